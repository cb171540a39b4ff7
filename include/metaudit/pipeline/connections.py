"""The Airflow edge's addresses: connections to URLs and keys, and links to the UI.

Each connection id the deployment defines (:mod:`metaudit.config`) is read here and
nowhere else; a task asks for a URL or a key, never for a connection.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from metaudit.config import (
    PACKET_KEY_CONN_ID,
    PACKET_SIGNING_KEY_CONN_ID,
    RESULTS_CONN_ID,
    SENDGRID_CONN_ID,
    SOURCE_CONN_ID,
    SQLALCHEMY_DRIVERS,
)
from metaudit.config import airflow_base_url as airflow_own_base_url
from metaudit.errors import SettingsError

if TYPE_CHECKING:
    from metaudit.mail import MailConfig
    from metaudit.spec.settings import Settings

log = logging.getLogger(__name__)


def sqlalchemy_url_from_connection(conn: Any) -> str:
    """A SQLAlchemy URL from an Airflow connection.

    ``extra.sqlalchemy_url`` wins when set (any dialect); otherwise the URL is
    built from the connection's type and fields (postgres, mysql, sqlite), so an
    admin can fill the usual Airflow form.
    """
    import sqlalchemy as sa

    extra = conn.extra_dejson if hasattr(conn, "extra_dejson") else {}
    if extra.get("sqlalchemy_url"):
        return str(extra["sqlalchemy_url"])
    conn_type = (conn.conn_type or "").lower()
    if conn_type == "sqlite":
        return str(sa.URL.create("sqlite", database=conn.host or conn.schema))
    if conn_type not in SQLALCHEMY_DRIVERS:
        raise SettingsError(
            f"connection {conn.conn_id!r} has type {conn_type!r}; use postgres, mysql or sqlite, "
            "or set extra.sqlalchemy_url"
        )
    url = sa.URL.create(
        SQLALCHEMY_DRIVERS[conn_type],
        username=conn.login or None,
        password=conn.password or None,
        host=conn.host or None,
        port=conn.port or None,
        database=conn.schema or None,
    )
    return url.render_as_string(hide_password=False)


def airflow_connection(conn_id: str) -> Any | None:
    """The Airflow connection ``conn_id``, or None when it is not defined."""
    from airflow.sdk import BaseHook
    from airflow.sdk.exceptions import AirflowNotFoundException

    try:
        return BaseHook.get_connection(conn_id)
    except AirflowNotFoundException:
        return None


def source_url() -> str:
    """The source database's URL, from the ``met_practice_db`` connection (required)."""
    conn = airflow_connection(SOURCE_CONN_ID)
    if conn is None:
        raise SettingsError(
            f"Airflow connection {SOURCE_CONN_ID!r} is not defined: add it (the practice "
            "database, any SQLAlchemy URL) before running the audit"
        )
    return sqlalchemy_url_from_connection(conn)


def results_url(lookup: Callable[[str], Any] | None = None) -> str:
    """The results store's URL: the ``met_results_db`` connection, else the default
    SQLite file ``results.sqlite`` in the data folder.

    ``lookup`` finds a connection by id; the default is the task SDK's
    (:func:`airflow_connection`). The API server passes its own: outside a task the SDK
    sees only connections defined in the environment."""
    from metaudit.results import default_url

    conn = (lookup or airflow_connection)(RESULTS_CONN_ID)
    return sqlalchemy_url_from_connection(conn) if conn is not None else default_url()


def sendgrid_credentials() -> tuple[str | None, str | None]:
    """``(api_key, host)`` from the ``sendgrid_default`` connection (password and host);
    ``(None, None)`` without it: mail then goes to the local outbox folder only."""
    from metaudit.mail import credentials_from_connection

    conn = airflow_connection(SENDGRID_CONN_ID)
    return credentials_from_connection(conn) if conn is not None else (None, None)


def packet_key(lookup: Callable[[str], Any] | None = None) -> str | None:
    """The packet signing key: the ``met_packet_key`` connection's password; None without
    it, so the packets fall back to METAUDIT_PACKET_KEY (and refuse to build without one).
    ``lookup`` as for :func:`results_url`."""
    conn = (lookup or airflow_connection)(PACKET_KEY_CONN_ID)
    secret = (getattr(conn, "password", None) or "").strip() if conn is not None else ""
    return secret or None


def packet_signing_key(lookup: Callable[[str], Any] | None = None) -> str | None:
    """The Ed25519 private key (PEM) that signs packets for auditors: the
    ``met_packet_signing_key`` connection's password (a PEM with real line breaks or
    literal ``\\n``); None without it, so the packets fall back to
    METAUDIT_PACKET_SIGNING_KEY. ``lookup`` as for :func:`results_url`."""
    conn = (lookup or airflow_connection)(PACKET_SIGNING_KEY_CONN_ID)
    secret = (getattr(conn, "password", None) or "").strip() if conn is not None else ""
    return secret or None


def airflow_base_url(settings: Settings, mail_config: MailConfig) -> str | None:
    """The Airflow UI's address for links: ``email.airflow_base_url`` when the configuration
    sets it (null: no links), else AIRFLOW__API__BASE_URL, else the mail default."""
    email = settings.sections.get("email")
    if isinstance(email, Mapping) and "airflow_base_url" in email:
        return mail_config.airflow_base_url
    return airflow_own_base_url() or mail_config.airflow_base_url
