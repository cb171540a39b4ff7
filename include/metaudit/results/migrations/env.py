"""Alembic environment of the results store.

Run programmatically by :func:`metaudit.results.store.migrate`, which hands over
an open connection in ``config.attributes["connection"]``. The store keeps its
own version table, so it can share a database with Airflow's metadata (which
has its own ``alembic_version``).
"""

from __future__ import annotations

from alembic import context

from metaudit.results.models import VERSION_TABLE, Base


def run() -> None:
    """Run the migrations on the handed-over connection, or as SQL text offline."""
    config = context.config
    connection = config.attributes.get("connection")
    if connection is None:
        # Offline (`alembic upgrade --sql`): emit the SQL for a DBA to review.
        context.configure(
            url=config.get_main_option("sqlalchemy.url"),
            target_metadata=Base.metadata,
            version_table=VERSION_TABLE,
            literal_binds=True,
        )
        with context.begin_transaction():
            context.run_migrations()
        return
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        version_table=VERSION_TABLE,
        # SQLite alters tables by copying them; batch mode does it for later migrations.
        render_as_batch=connection.dialect.name == "sqlite",
    )
    with context.begin_transaction():
        context.run_migrations()


run()
