"""Judging typed records: the as-of view, the rules' facts, GX, findings and their money.

- :mod:`~metaudit.check.view`: the records as they stood on the as-of date.
- :mod:`~metaudit.check.derive`: per family, the frames of facts the suites check.
- :mod:`~metaudit.check.gx`: the suites loaded once, frames validated, failures collected.
- :mod:`~metaudit.check.engine`: the whole check (load, view, derive, validate) into
  findings: what ``metaudit check`` and the validate task run.
- :mod:`~metaudit.check.exposure` and :mod:`~metaudit.check.deadlines`: the money each
  finding puts at risk, and the draft claims' filing deadlines.
"""
