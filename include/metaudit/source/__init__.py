"""Reading a practice database: rows in, typed tables and data-quality findings out.

- :mod:`~metaudit.source.reader`: connect (SQLAlchemy or ADBC), read-only, bounded by a
  statement timeout; every failure named by source and table.
- :mod:`~metaudit.source.quality`: typing the raw tables by the contract and the
  data-quality rules (DQ-*) on what does not type, keys and duplicates.
- :mod:`~metaudit.source.snapshot`: the typed source cut into one partition per practice
  (Arrow IPC files), written by extract and read by each practice's tasks.
"""
