"""What tests need of servers: whether one is reachable, and an Airflow api-server's settings.

The database and broker hosts can be moved with METAUDIT_TEST_PG_HOST,
METAUDIT_TEST_MARIADB_HOST and METAUDIT_TEST_REDIS_HOST (127.0.0.1 by default).
"""

from __future__ import annotations

import os
import socket
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

POSTGRES_HOST = os.environ.get("METAUDIT_TEST_PG_HOST", "127.0.0.1")
MARIADB_HOST = os.environ.get("METAUDIT_TEST_MARIADB_HOST", "127.0.0.1")
REDIS_HOST = os.environ.get("METAUDIT_TEST_REDIS_HOST", "127.0.0.1")


def reachable(host: str, port: int) -> bool:
    """Whether something accepts TCP connections at host:port (1 s timeout): a test that
    needs the server skips, naming it, when this is False."""
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


def airflow_api_env(root: Path, *, users: str, jwt_secret: str, packet_key: str) -> dict[str, str]:
    """The settings of an Airflow api-server with the MET Audit plugin, all of it under ``root``.

    AIRFLOW_HOME is root/airflow with its SQLite metadata database; the DAGs and the plugin
    come from this repository; SimpleAuthManager knows ``users`` ("name:role,..."); MET Audit
    reads root/metaudit.yaml and keeps its data in root/data and its packets in root/packets.
    Only these settings: the caller adds them to whatever environment it starts from.
    """
    airflow_home = root / "airflow"
    return {
        "AIRFLOW_HOME": str(airflow_home),
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{airflow_home / 'airflow.db'}",
        "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(REPO / "plugins"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__UNIT_TEST_MODE": "False",
        "AIRFLOW__CORE__AUTH_MANAGER": (
            "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager"
        ),
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": users,
        "AIRFLOW__API_AUTH__JWT_SECRET": jwt_secret,
        "METAUDIT_CONFIG": str(root / "metaudit.yaml"),
        "METAUDIT_DATA_DIR": str(root / "data"),
        "METAUDIT_PACKETS_DIR": str(root / "packets"),
        "METAUDIT_PACKET_KEY": packet_key,
    }
