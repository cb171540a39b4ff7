"""Migrations of the results store, oldest first (``down_revision`` chains them)."""
