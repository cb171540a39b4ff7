"""What the packets pages need from the deployment: configuration, store, folder, key.

Read once, on the first request, not when the Airflow API server imports the
plugin: a broken configuration then shows as a clear error on the packets page
instead of stopping the API server, and the plugin's import stays cheap.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from metaudit import config
from metaudit.errors import SettingsError
from metaudit.web.access import AccessPolicy, access_policy
from metaudit.web.catalog import PacketCatalog

log = logging.getLogger(__name__)

# Where the packets page calls Airflow's REST API to trigger a rebuild with the user's
# token. Default: the API server's own [api] base_url; without either, rebuilds fail
# (the address is never taken from the request: its Host header is the client's).
AIRFLOW_API_URL_ENV = config.AIRFLOW_API_URL_ENV


@dataclass
class WebContext:
    """Everything a request of the packets pages reads, resolved once."""

    policy: AccessPolicy
    catalog: PacketCatalog
    store: Any  # metaudit.results.ResultsStore (imported lazily: SQLAlchemy models)
    packet_key: bytes | None
    airflow_api_url: str | None = None
    # Why there is no packet key (none set, too short, the demo key outside the demo).
    packet_key_problem: str | None = None
    # Tests put an httpx transport here to stand in for Airflow's REST API.
    airflow_transport: Any = None
    # Today's date (UTC) as the pages judge it (an until date in the past); tests fix it.
    clock: Any = None
    # The records requests: the source database's URL (None: the ``met_practice_db``
    # connection, looked up when a request is built), the Ed25519 key that signs for
    # auditors (None: METAUDIT_PACKET_SIGNING_KEY), the packets folder and the audit
    # results folder (None: the data folder's).
    source_url: str | None = None
    signing_key: str | None = None
    packets_dir: Path | None = None
    results_root: Path | None = None

    def source(self) -> str:
        """The source database's URL the records requests read."""
        if self.source_url:
            return self.source_url
        from metaudit.pipeline.connections import sqlalchemy_url_from_connection

        conn = _server_connection(config.SOURCE_CONN_ID)
        if conn is None:
            raise SettingsError(
                f"Airflow connection {config.SOURCE_CONN_ID!r} is not defined: the packets page "
                "reads the practice database from it to answer a records request"
            )
        url: str = sqlalchemy_url_from_connection(conn)
        return url

    def today(self) -> date:
        if self.clock is not None:
            day: date = self.clock()
            return day
        return datetime.now(UTC).date()


def _server_connection(conn_id: str) -> Any | None:
    """An Airflow connection as the API server sees it (metadata DB, secrets backends,
    environment). The task SDK's BaseHook only reads the environment outside a task."""
    from airflow.exceptions import AirflowNotFoundException
    from airflow.models.connection import Connection

    try:
        return Connection.get_connection_from_secrets(conn_id)
    except AirflowNotFoundException:
        return None


def _airflow_api_url() -> str | None:
    configured = config.airflow_api_url()
    if configured:
        return configured
    from airflow.configuration import conf

    return conf.get("api", "base_url", fallback=None) or None


def load_context() -> WebContext:
    """The deployment's context: the configuration (METAUDIT_CONFIG), the results store
    (connection ``met_results_db``), the packets folder and the packet key (connection
    ``met_packet_key`` or METAUDIT_PACKET_KEY)."""
    from metaudit.config import demo_mode
    from metaudit.packets.errors import PacketKeyError
    from metaudit.packets.layout import check_letterheads, packet_options
    from metaudit.packets.signing import resolve_key
    from metaudit.pipeline.connections import packet_key, packet_signing_key, results_url
    from metaudit.results import ResultsStore
    from metaudit.spec.settings import Settings

    settings = Settings.load()
    policy = access_policy(settings)
    packets_dir = packet_options(settings).packets_dir
    check_letterheads(settings)
    store = ResultsStore.open(results_url(lookup=_server_connection))
    key: bytes | None
    problem = None
    try:
        # As the packets are signed: the connection, else METAUDIT_PACKET_KEY, else (demo
        # only) the published demo key.
        key, _ = resolve_key(packet_key(lookup=_server_connection), demo=demo_mode())
    except PacketKeyError as exc:
        key, problem = None, str(exc)
        log.warning("the packets page cannot verify packets: %s", exc)
    log.info("packets page: packets in %s, configuration %s", packets_dir, settings.source)
    return WebContext(
        policy=policy,
        catalog=PacketCatalog(Path(packets_dir)),
        store=store,
        packet_key=key,
        airflow_api_url=_airflow_api_url(),
        packet_key_problem=problem,
        signing_key=packet_signing_key(lookup=_server_connection),
        packets_dir=Path(packets_dir),
    )


class ContextHolder:
    """Loads the context on first use; a failed load is retried on the next request."""

    def __init__(self, loader: Any = load_context) -> None:
        self._loader = loader
        self._context: WebContext | None = None
        self._lock = threading.Lock()

    def set(self, context: WebContext) -> None:
        self._context = context

    def get(self) -> WebContext:
        if self._context is None:
            with self._lock:
                if self._context is None:
                    try:
                        self._context = self._loader()
                    except SettingsError:
                        raise
                    except Exception as exc:
                        raise SettingsError(
                            f"the packets page cannot start: {type(exc).__name__}: {exc}"
                        ) from exc
        assert self._context is not None
        return self._context
