"""The Airflow edge: what each task of the nightly DAG calls, and what a failure does.

- :mod:`~metaudit.pipeline.stages`: plan, extract, validate, persist, notify, packets,
  finish: one function per task, ids and paths in and out.
- :mod:`~metaudit.pipeline.alerts`: a practice marked failed, the failure recorded and
  mailed to the admins, refused alerts posted again.
- :mod:`~metaudit.pipeline.connections`: Airflow connections to URLs and keys, run links.
- :mod:`~metaudit.pipeline.celery_config`: the Celery workers' start-up.

The only package that imports Airflow in a task; nothing below it imports this one.
Nothing here imports pandas, GX or SQLAlchemy at module level: the DAG file imports
the failure callback when Airflow parses it.
"""
