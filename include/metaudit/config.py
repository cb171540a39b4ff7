"""The deployment's environment, read here and nowhere else; and the names it fixes.

Every ``METAUDIT_*`` variable (and the two of Airflow's and Arrow's that the
project reads) is read by one function below, typed, with its default. Each is
read when asked, not at import, so a test or a task that sets the environment
sees its own value. :data:`VARIABLES` lists them for the docs and the tests.

The names the deployment fixes live here too: the DAG id and the Airflow
connection ids (the interfaces fix them), which the DAG, the email's links and
the packets pages all use. A low-level module: it imports nothing else of the
project but its errors.
"""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import quote

from metaudit.errors import SettingsError

DAG_ID = "met_compliance_nightly"
SOURCE_CONN_ID = "met_practice_db"
RESULTS_CONN_ID = "met_results_db"
SENDGRID_CONN_ID = "sendgrid_default"
PACKET_KEY_CONN_ID = "met_packet_key"
PACKET_SIGNING_KEY_CONN_ID = "met_packet_signing_key"
# The SQLAlchemy driver of each database name an admin may give (a URL's scheme or an
# Airflow connection's type): the drivers the project ships, psycopg 3 and PyMySQL.
SQLALCHEMY_DRIVERS = {
    "postgresql": "postgresql+psycopg",
    "postgres": "postgresql+psycopg",
    "mysql": "mysql+pymysql",
}

CONFIG_ENV = "METAUDIT_CONFIG"
DATA_DIR_ENV = "METAUDIT_DATA_DIR"
DEMO_ENV = "METAUDIT_DEMO"
PACKET_KEY_ENV = "METAUDIT_PACKET_KEY"
PACKET_SIGNING_KEY_ENV = "METAUDIT_PACKET_SIGNING_KEY"
PACKET_PUBLIC_KEYS_ENV = "METAUDIT_PACKET_PUBLIC_KEYS"
PACKETS_DIR_ENV = "METAUDIT_PACKETS_DIR"
SNAPSHOT_KEEP_DAYS_ENV = "METAUDIT_SNAPSHOT_KEEP_DAYS"
AIRFLOW_API_URL_ENV = "METAUDIT_AIRFLOW_API_URL"
EXPECTATIONS_DIR_ENV = "METAUDIT_EXPECTATIONS_DIR"
NIGHTLY_CRON_ENV = "METAUDIT_NIGHTLY_CRON"
NIGHTLY_TIMEZONE_ENV = "METAUDIT_NIGHTLY_TIMEZONE"
PRACTICES_PER_TASK_ENV = "METAUDIT_PRACTICES_PER_TASK"
AUDIT_PROCESSES_ENV = "METAUDIT_AUDIT_PROCESSES"
# Airflow's own setting for the address of its UI ([api] base_url).
AIRFLOW_BASE_URL_ENV = "AIRFLOW__API__BASE_URL"
# Arrow's: when set, the engine leaves Arrow's memory pool as the operator chose it.
ARROW_POOL_ENV = "ARROW_DEFAULT_MEMORY_POOL"

# The checkout this package sits in (include/metaudit/ -> the repository), when it is one:
# its data/ is the default data folder, so `make demo` and the tests work without any
# variable set. An installed package has no checkout around it: ./data then.
PROJECT_ROOT = Path(__file__).resolve().parents[2]
IN_CHECKOUT = (PROJECT_ROOT / "pyproject.toml").is_file() and (PROJECT_ROOT / "dags").is_dir()
DEFAULT_SNAPSHOT_KEEP_DAYS = 7
DEFAULT_NIGHTLY_CRON = "30 5 * * *"
DEFAULT_NIGHTLY_TIMEZONE = "America/New_York"

VARIABLES: dict[str, str] = {
    CONFIG_ENV: "the configuration file (YAML); without it the rulebook defaults apply",
    DATA_DIR_ENV: "the data folder: partitions, results, outbox, packets, the SQLite store",
    DEMO_ENV: "1 in the demo only: packets may be signed with the published demo key",
    PACKET_KEY_ENV: "the packet signing key, when the met_packet_key connection is not set",
    PACKET_SIGNING_KEY_ENV: (
        "the Ed25519 private key (PEM) auditors check packets with, when the "
        "met_packet_signing_key connection is not set"
    ),
    PACKET_PUBLIC_KEYS_ENV: (
        "earlier Ed25519 public keys (PEM blocks) that still verify packets after a rotation"
    ),
    PACKETS_DIR_ENV: "where packets go, when the configuration's packets.dir is not set",
    SNAPSHOT_KEEP_DAYS_ENV: "days a failed run's partitions are kept for retries (default 7)",
    AIRFLOW_API_URL_ENV: "the Airflow REST API the packets pages post rebuilds to",
    EXPECTATIONS_DIR_ENV: "a folder of GX suites to use instead of the package's own",
    NIGHTLY_CRON_ENV: "the nightly schedule (cron, default 30 5 * * *)",
    NIGHTLY_TIMEZONE_ENV: "the schedule's time zone (default America/New_York)",
    PRACTICES_PER_TASK_ENV: "practices audited by one task of the nightly run (default 10)",
    AUDIT_PROCESSES_ENV: (
        "processes one task of the nightly run audits its practices in (default 1; "
        "`make demo` uses every core)"
    ),
}


def _get(name: str) -> str:
    return os.environ.get(name, "").strip()


def config_file() -> str | None:
    """The configuration file named by METAUDIT_CONFIG, or None (rulebook defaults)."""
    return _get(CONFIG_ENV) or None


def data_dir() -> Path:
    """The project's data folder: METAUDIT_DATA_DIR, else ``data/`` in the checkout, else
    ``data/`` in the working folder (an installed package)."""
    configured = _get(DATA_DIR_ENV)
    if configured:
        return Path(configured)
    return (PROJECT_ROOT if IN_CHECKOUT else Path.cwd()) / "data"


def demo_mode() -> bool:
    """Whether this is the demo (METAUDIT_DEMO=1): packets may use the published demo key."""
    return _get(DEMO_ENV) == "1"


def packet_key() -> str | None:
    """The packet signing key from METAUDIT_PACKET_KEY (unstripped: a key is a secret as
    given), or None."""
    return os.environ.get(PACKET_KEY_ENV) or None


def packet_signing_key() -> str | None:
    """The Ed25519 private key (PEM) from METAUDIT_PACKET_SIGNING_KEY, or None."""
    return _get(PACKET_SIGNING_KEY_ENV) or None


def packet_public_keys() -> str | None:
    """The earlier Ed25519 public keys (PEM blocks) from METAUDIT_PACKET_PUBLIC_KEYS, or None."""
    return _get(PACKET_PUBLIC_KEYS_ENV) or None


def packets_dir() -> Path | None:
    """The packets folder from METAUDIT_PACKETS_DIR, or None."""
    value = _get(PACKETS_DIR_ENV)
    return Path(value) if value else None


def snapshot_keep_days() -> int:
    """Days a failed run's partitions are kept (METAUDIT_SNAPSHOT_KEEP_DAYS, default 7)."""
    raw = _get(SNAPSHOT_KEEP_DAYS_ENV)
    if not raw:
        return DEFAULT_SNAPSHOT_KEEP_DAYS
    if not raw.isdigit():
        raise SettingsError(
            f"{SNAPSHOT_KEEP_DAYS_ENV} must be a whole number of days >= 0, got {raw!r}"
        )
    return int(raw)


# Ten practices a task: Airflow's own cost per task (seconds) and GX's fixed cost per
# validation are paid once for ten, and a network still spreads over many task slots.
DEFAULT_PRACTICES_PER_TASK = 10


def practices_per_task() -> int:
    """How many practices one task of the nightly run audits (METAUDIT_PRACTICES_PER_TASK,
    default 10); more when the network has more practices than Airflow maps tasks."""
    raw = _get(PRACTICES_PER_TASK_ENV)
    if not raw:
        return DEFAULT_PRACTICES_PER_TASK
    if not raw.isdigit() or int(raw) < 1:
        raise SettingsError(f"{PRACTICES_PER_TASK_ENV} must be a whole number >= 1, got {raw!r}")
    return int(raw)


def audit_processes() -> int:
    """How many processes one task of the nightly run audits its practices in
    (METAUDIT_AUDIT_PROCESSES, default 1). More than one pays where a task has the machine
    to itself, as under `airflow dags test`; a Celery worker already runs tasks side by side."""
    raw = _get(AUDIT_PROCESSES_ENV)
    if not raw:
        return 1
    if not raw.isdigit() or int(raw) < 1:
        raise SettingsError(f"{AUDIT_PROCESSES_ENV} must be a whole number >= 1, got {raw!r}")
    return int(raw)


def airflow_api_url() -> str | None:
    """The Airflow REST API's address for the packets pages (METAUDIT_AIRFLOW_API_URL)."""
    return _get(AIRFLOW_API_URL_ENV) or None


def airflow_base_url() -> str | None:
    """The Airflow UI's address as Airflow itself is configured (AIRFLOW__API__BASE_URL)."""
    return _get(AIRFLOW_BASE_URL_ENV) or None


def expectations_dir() -> Path | None:
    """A folder of suites that replaces the package's own (METAUDIT_EXPECTATIONS_DIR)."""
    value = _get(EXPECTATIONS_DIR_ENV)
    return Path(value) if value else None


def nightly_schedule() -> tuple[str, str]:
    """The nightly run's cron expression and time zone."""
    return (
        _get(NIGHTLY_CRON_ENV) or DEFAULT_NIGHTLY_CRON,
        _get(NIGHTLY_TIMEZONE_ENV) or DEFAULT_NIGHTLY_TIMEZONE,
    )


def arrow_pool_chosen() -> bool:
    """Whether the operator chose Arrow's memory pool (ARROW_DEFAULT_MEMORY_POOL)."""
    return bool(_get(ARROW_POOL_ENV))


def run_url(base_url: str | None, run_id: str | None, dag_id: str = DAG_ID) -> str | None:
    """The page of a run in the Airflow UI (the DAG's runs without ``run_id``), or None
    without a base address."""
    if not base_url:
        return None
    runs = f"{base_url.rstrip('/')}/dags/{quote(dag_id, safe='')}/runs"
    return f"{runs}/{quote(run_id, safe='')}" if run_id else runs
