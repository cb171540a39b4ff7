"""The results store: runs, per-practice status and timings, findings and their history.

``with session(url) as store:`` opens the store for a block and closes it after;
``ResultsStore.open(url)`` opens it for longer (the web server's). Either migrates the
schema (Alembic, migrations shipped in ``metaudit/results/migrations``) the first time
the process opens that URL. ``default_url()`` is the SQLite file the store lives in
when no ``met_results_db`` connection is set.
"""

from __future__ import annotations

from pathlib import Path

from metaudit.results.store import ResultsStore, RunOutcome, StoredPractice, migrate, session

RESULTS_DB_FILE = "results.sqlite"

__all__ = ["ResultsStore", "RunOutcome", "StoredPractice", "default_url", "migrate", "session"]


def default_url(data_dir: Path | None = None) -> str:
    """The default store: ``results.sqlite`` in the project's data folder (METAUDIT_DATA_DIR)."""
    from metaudit.paths import data_dir as project_data_dir

    folder = data_dir or project_data_dir()
    return f"sqlite:///{(Path(folder) / RESULTS_DB_FILE).resolve()}"
