"""What is checked: the rulebook, its settings, the data contract and the findings format.

- :mod:`~metaudit.spec.rulebook`: the 50 rules (id, severity, entity, text, fix), the one
  list every other part reads.
- :mod:`~metaudit.spec.settings`: the configuration file, its settings (each rule's
  thresholds with their defaults) and the sections of the email, packets and pages.
- :mod:`~metaudit.spec.sections`: the one validator of the configuration file's sections
  (``source``, ``email``, ``access``, ``packets``): declared keys, every problem by path.
- :mod:`~metaudit.spec.contract`: the source database's tables and columns;
  :mod:`~metaudit.spec.schema` builds them in SQLAlchemy for tools that create sources.
- :mod:`~metaudit.spec.findings`: the findings format (fields, order, fingerprint, files).
- :mod:`~metaudit.spec.icd10` and :mod:`~metaudit.spec.npi`: the code sets the rulebook
  names (billable ICD-10-CM codes, the NPI check digit).
- ``suites/``: the rule families' Great Expectations suites, package data.

The lowest layer of the package: it imports nothing of it but ``paths``, ``config`` and
``errors``.
"""
