"""Alembic environment and migrations of the results store (run by metaudit.results.migrate)."""
