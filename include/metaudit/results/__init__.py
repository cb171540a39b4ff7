"""The results store: runs, per-practice status and timings, findings and their history.

``ResultsStore.open(url)`` migrates the schema (Alembic, migrations shipped in
``metaudit/results/migrations``) and returns the store; ``default_url()`` is the
SQLite file the store lives in when no ``met_results_db`` connection is set.
"""

from __future__ import annotations

from pathlib import Path

from metaudit.results.store import ResultsStore, RunOutcome, StoredPractice, migrate

RESULTS_DB_FILE = "results.sqlite"

__all__ = ["ResultsStore", "RunOutcome", "StoredPractice", "default_url", "migrate"]


def default_url(data_dir: Path | None = None) -> str:
    """The default store: ``results.sqlite`` in the project's data folder (METAUDIT_DATA_DIR)."""
    from metaudit.paths import data_dir as project_data_dir

    folder = data_dir or project_data_dir()
    return f"sqlite:///{(Path(folder) / RESULTS_DB_FILE).resolve()}"
