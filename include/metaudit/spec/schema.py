"""SQLAlchemy tables built from the data contract, for tools that create sources.

The audit never writes to a practice's database. The demo generator and the
tests do: they create a contract-shaped database with these definitions.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import sqlalchemy as sa

from metaudit.spec.contract import BOOL, DATE, INT, NUM, TABLES, TEXT, TIMESTAMP, Table

_SQL_TYPES: dict[str, Any] = {
    TEXT: sa.Text,
    INT: sa.Integer,
    NUM: lambda: sa.Numeric(12, 2),
    BOOL: sa.Boolean,
    DATE: sa.Date,
    TIMESTAMP: lambda: sa.DateTime(timezone=True),
}


def _key_type(dialect: str) -> Any:
    # MySQL/MariaDB cannot index TEXT without a length; ids are short.
    return sa.String(64) if dialect in {"mysql", "mariadb"} else sa.Text()


def build_metadata(
    *, typed: bool = True, dialect: str = "sqlite", with_keys: bool = True
) -> sa.MetaData:
    """Return MetaData holding every contract table.

    ``typed=False`` makes every column text, the shape of a source whose values
    arrive as strings (an export, a view over a legacy system); it is how tests
    put unreadable dates or numbers into PostgreSQL or MariaDB. ``with_keys=False``
    leaves out primary-key constraints so duplicated ids can be stored, which a
    real unhealthy source may hold.
    """
    metadata = sa.MetaData()
    for table in TABLES.values():
        columns = []
        for col in table.columns:
            if col.name == table.key or col.references:
                sql_type: Any = _key_type(dialect)
            elif typed:
                factory = _SQL_TYPES[col.type]
                sql_type = factory()
            else:
                sql_type = sa.Text()
            columns.append(
                sa.Column(
                    col.name,
                    sql_type,
                    primary_key=with_keys and col.name == table.key,
                    nullable=True,
                )
            )
        sa.Table(table.name, metadata, *columns)
    return metadata


def create_schema(
    engine: sa.Engine,
    *,
    typed: bool = True,
    with_keys: bool = True,
    drop_existing: bool = False,
    tables: Iterable[str] | None = None,
) -> sa.MetaData:
    """Create the contract tables (or the named subset) in ``engine``'s database."""
    metadata = build_metadata(typed=typed, dialect=engine.dialect.name, with_keys=with_keys)
    selected = [metadata.tables[name] for name in (tables or TABLES)]
    if drop_existing:
        metadata.drop_all(engine, tables=selected)
    metadata.create_all(engine, tables=selected)
    return metadata


def insert_rows(
    engine: sa.Engine,
    metadata: sa.MetaData,
    rows_by_table: Mapping[str, Iterable[Mapping[str, Any]]],
) -> None:
    """Insert rows (dicts keyed by column name) into the contract tables in one transaction."""
    with engine.begin() as conn:
        for name, rows in rows_by_table.items():
            batch = [dict(r) for r in rows]
            if batch:
                conn.execute(metadata.tables[name].insert(), batch)


def contract_table(name: str) -> Table:
    """The contract definition of ``name`` (a KeyError names an unknown table)."""
    return TABLES[name]
