"""A real Airflow api-server with the MET Audit plugin, demo packets and a headless Chromium.

Everything lives in one temporary folder: Airflow's home and SQLite metadata database (the
nightly DAG reserialized into it, so the plugin can trigger it), the SimpleAuthManager users
with known passwords, a MET Audit configuration naming who may see which practice, a generated
two-practice demo network and its signed packets. The server starts once per session in a
process group of its own and that whole group is killed at the end.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import pytest
from servers import REPO, airflow_api_env

if TYPE_CHECKING:
    from playwright.sync_api import Browser, BrowserContext

# The venv that runs pytest also holds airflow and metaudit (installed editable).
VENV_BIN = Path(sys.executable).parent
CHROMIUM = Path("/usr/bin/chromium")

AS_OF = "2026-03-31"
AS_OF_MONTH = AS_OF[:7]
PRACTICES = ("PR0001", "PR0002")
# Test-only secrets: a packet signing key (32 characters) and the API's JWT secret.
PACKET_KEY = "e2e-packet-key-0123456789abcdef!"
JWT_SECRET = "metaudit-e2e-jwt-secret-not-for-production-use"
PASSWORDS = {"owner1": "owner1-e2e-pass", "owner2": "owner2-e2e-pass", "admin": "admin-e2e-pass"}
# owner1 sees PR0001 only, owner2 PR0002 only; Airflow's "admin" role sees everything.
METAUDIT_CONFIG = """\
access:
  admins: []
  admin_roles: [admin]
practices:
  "PR0001":
    packet_viewers: [owner1]
  "PR0002":
    packet_viewers: [owner2]
"""

# The machine is slow and shared: Airflow's first start (imports, plugin load) takes a while.
STARTUP_TIMEOUT_S = 120
STEP_TIMEOUT_S = 300


@dataclass(frozen=True)
class Packet:
    """A packet built on disk by the fixture (the truth the UI is checked against)."""

    practice_id: str
    kind: str  # "client" or "practice"
    path: Path
    client_id: str | None = None

    @property
    def download_query(self) -> str:
        if self.kind == "client":
            return f"practice_id={self.practice_id}&as_of={AS_OF}&client_id={self.client_id}"
        return f"practice_id={self.practice_id}&month={AS_OF_MONTH}"


@dataclass
class MetAuditServer:
    """The running api-server and everything it was started with."""

    base_url: str
    root: Path
    packets_dir: Path
    log_path: Path
    env: dict[str, str]
    process: subprocess.Popen[bytes]
    packets: list[Packet] = field(default_factory=list)
    # The demo network the server reads (records requests) and the deployment's Ed25519
    # public key (PEM), which signs the packets the server builds for auditors.
    source: Path | None = None
    public_key: Path | None = None

    def url(self, path: str) -> str:
        return self.base_url + path

    def log_tail(self, lines: int = 60) -> str:
        return _tail(self.log_path, lines)

    def client_packets(self, practice_id: str) -> list[Packet]:
        return [p for p in self.packets if p.practice_id == practice_id and p.kind == "client"]

    def practice_packet(self, practice_id: str) -> Packet:
        (packet,) = [
            p for p in self.packets if p.practice_id == practice_id and p.kind == "practice"
        ]
        return packet


def _tail(path: Path, lines: int = 60) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        return f"(no log at {path}: {exc})"
    return "\n".join(text.splitlines()[-lines:])


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _server_env(root: Path, port: int) -> dict[str, str]:
    """The process environment: this machine's, minus any Airflow/MET Audit settings, plus ours."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("AIRFLOW", "METAUDIT_", "_AIRFLOW"))
    }
    env.update(
        airflow_api_env(
            root,
            users="owner1:viewer,owner2:viewer,admin:admin",
            jwt_secret=JWT_SECRET,
            packet_key=PACKET_KEY,
        )
    )
    # A real server: known passwords for the browser's sign-in, and its own address.
    env["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE"] = str(root / "passwords.json")
    env["AIRFLOW__API__BASE_URL"] = f"http://127.0.0.1:{port}"
    return env


def _run(step: str, args: list[str], env: dict[str, str], log: Path) -> None:
    """Run one preparation step, its output in a log; fail with the log's tail."""
    with log.open("wb") as out:
        try:
            result = subprocess.run(
                args, env=env, stdout=out, stderr=subprocess.STDOUT, timeout=STEP_TIMEOUT_S
            )
        except subprocess.TimeoutExpired:
            pytest.fail(f"{step} took more than {STEP_TIMEOUT_S} s; log {log}:\n{_tail(log)}")
    if result.returncode != 0:
        pytest.fail(f"{step} exited {result.returncode}; log {log}:\n{_tail(log)}")


def _wait(step: str, process: subprocess.Popen[bytes], log: Path) -> None:
    try:
        code = process.wait(timeout=STEP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        _stop_group(process)
        pytest.fail(f"{step} took more than {STEP_TIMEOUT_S} s; log {log}:\n{_tail(log)}")
    if code != 0:
        pytest.fail(f"{step} exited {code}; log {log}:\n{_tail(log)}")


def _stop_group(process: subprocess.Popen[bytes]) -> None:
    """Stop the process and whatever it spawned (uvicorn workers): its whole process group."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)
    # Children that outlived their leader still carry the group id.
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)


def _wait_healthy(process: subprocess.Popen[bytes], base_url: str, log: Path) -> None:
    import httpx

    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    last = "no answer yet"
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(
                f"airflow api-server exited {process.returncode} while starting; "
                f"log {log}:\n{_tail(log)}"
            )
        try:
            response = httpx.get(f"{base_url}/api/v2/monitor/health", timeout=5)
            if response.status_code == 200:
                return
            last = f"HTTP {response.status_code}: {response.text[:200]}"
        except httpx.HTTPError as exc:
            last = f"{type(exc).__name__}: {exc}"
        time.sleep(1)
    _stop_group(process)
    pytest.fail(
        f"airflow api-server did not answer GET /api/v2/monitor/health within "
        f"{STARTUP_TIMEOUT_S} s (last: {last}); log {log}:\n{_tail(log)}"
    )


def _built_packets(packets_dir: Path) -> list[Packet]:
    packets: list[Packet] = []
    for practice_id in PRACTICES:
        folder = packets_dir / practice_id
        for path in sorted((folder / AS_OF).glob("*.zip")):
            packets.append(Packet(practice_id, "client", path, client_id=path.stem))
        practice_zip = folder / f"practice-{AS_OF_MONTH}.zip"
        if practice_zip.is_file():
            packets.append(Packet(practice_id, "practice", practice_zip))
    return packets


@pytest.fixture(scope="session")
def playwright_ready() -> None:
    """Skip (with the reason) when the browser or the driver is missing; never download one."""
    if not CHROMIUM.is_file():
        pytest.skip(f"needs Debian's Chromium at {CHROMIUM} (apt-get install chromium)")
    pytest.importorskip(
        "playwright.sync_api", reason="needs the playwright package (requirements-dev.txt)"
    )


@pytest.fixture(scope="session")
def metaudit_server(
    playwright_ready: None, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[MetAuditServer]:
    """Demo data, signed packets, a migrated Airflow and a running api-server with the plugin."""
    root = tmp_path_factory.mktemp("metaudit_e2e")
    port = _free_port()
    base_url = f"http://127.0.0.1:{port}"
    env = _server_env(root, port)
    for folder in ("airflow", "data", "packets", "logs"):
        (root / folder).mkdir()
    logs = root / "logs"
    (root / "passwords.json").write_text(json.dumps(PASSWORDS), encoding="utf-8")
    (root / "metaudit.yaml").write_text(METAUDIT_CONFIG, encoding="utf-8")

    demo_db = root / "demo.sqlite"
    _run(
        "metaudit demo",
        [
            str(VENV_BIN / "metaudit"),
            "demo",
            "--target",
            str(demo_db),
            "--as-of",
            AS_OF,
            "--practices",
            str(len(PRACTICES)),
            "--sessions",
            "600",
            "--no-progress",
        ],
        env,
        logs / "demo.log",
    )
    # Building the packets (~15 s) and migrating Airflow's database overlap: two cores.
    packets_log = logs / "packets.log"
    with packets_log.open("wb") as out:
        packets_build = subprocess.Popen(
            [
                str(VENV_BIN / "metaudit"),
                "packets",
                "--source",
                str(demo_db),
                "--as-of",
                AS_OF,
                "--out",
                str(root / "packets"),
            ],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        _run(
            "airflow db migrate",
            [str(VENV_BIN / "airflow"), "db", "migrate"],
            env,
            logs / "db-migrate.log",
        )
        _run(
            "airflow dags reserialize",
            [str(VENV_BIN / "airflow"), "dags", "reserialize"],
            env,
            logs / "dags-reserialize.log",
        )
        _wait("metaudit packets", packets_build, packets_log)
    finally:
        if packets_build.poll() is None:
            _stop_group(packets_build)
    packets = _built_packets(root / "packets")
    for practice_id in PRACTICES:
        kinds = {p.kind for p in packets if p.practice_id == practice_id}
        assert kinds == {"client", "practice"}, (
            f"metaudit packets built {sorted(kinds)} for {practice_id}, expected client and "
            f"practice packets; log {packets_log}:\n{_tail(packets_log)}"
        )

    # The records requests: the server reads the demo network through met_practice_db and
    # signs with the deployment's own Ed25519 key, made as docs/packets.md says. Given to
    # the API server only: the packets built above stay as the other tests know them.
    private_key, public_key = root / "signing.pem", root / "public_key.pem"
    _run(
        "openssl genpkey",
        ["openssl", "genpkey", "-algorithm", "ed25519", "-out", str(private_key)],
        env,
        logs / "openssl.log",
    )
    _run(
        "openssl pkey -pubout",
        ["openssl", "pkey", "-in", str(private_key), "-pubout", "-out", str(public_key)],
        env,
        logs / "openssl-pub.log",
    )
    server_env = {
        **env,
        "AIRFLOW_CONN_MET_PRACTICE_DB": json.dumps({"conn_type": "sqlite", "host": str(demo_db)}),
        "METAUDIT_PACKET_SIGNING_KEY": private_key.read_text(encoding="utf-8"),
    }
    log_path = logs / "api-server.log"
    with log_path.open("wb") as out:
        process = subprocess.Popen(
            [
                str(VENV_BIN / "airflow"),
                "api-server",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
            ],
            env=server_env,
            cwd=root,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # a process group of its own, killed whole at teardown
        )
    try:
        _wait_healthy(process, base_url, log_path)
        yield MetAuditServer(
            base_url=base_url,
            root=root,
            packets_dir=root / "packets",
            log_path=log_path,
            env=env,
            process=process,
            packets=packets,
            source=demo_db,
            public_key=public_key,
        )
    finally:
        _stop_group(process)


@pytest.fixture(scope="session")
def browser(playwright_ready: None) -> Iterator[Browser]:
    """Debian's headless Chromium driven by Playwright (no browser download)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True)
        try:
            yield chromium
        finally:
            chromium.close()


def login_through_ui(
    context: BrowserContext, server: MetAuditServer, user: str, next_path: str = "/metaudit/packets"
) -> None:
    """Sign in on Airflow's own login page (SimpleAuthManager's React form), like a person.

    The form posts to /auth/token, stores the JWT in the ``_token`` cookie and then goes to
    ``next``: landing there with the cookie set proves the sign-in.
    """
    page = context.new_page()
    try:
        target = server.url(next_path)
        page.goto(server.url(f"/auth/login?next={quote(target, safe='')}"))
        page.get_by_label("Username").fill(user)
        page.get_by_label("Password").fill(PASSWORDS[user])
        page.get_by_role("button", name="Sign in").click()
        page.wait_for_url(f"{target}*", timeout=60_000)
        cookies = {c["name"] for c in context.cookies(server.base_url)}
        assert "_token" in cookies, f"no _token cookie after {user} signed in: {sorted(cookies)}"
    finally:
        page.close()


@pytest.fixture(scope="module")
def new_context(
    browser: Browser, metaudit_server: MetAuditServer
) -> Iterator[Callable[..., BrowserContext]]:
    """Make browser contexts (closed at the end of the module); downloads accepted."""
    contexts: list[BrowserContext] = []

    def make(**options: Any) -> BrowserContext:
        context = browser.new_context(
            accept_downloads=True, viewport={"width": 1280, "height": 900}, **options
        )
        context.set_default_timeout(30_000)
        contexts.append(context)
        return context

    yield make
    for context in contexts:
        context.close()


@pytest.fixture(scope="module")
def owner1_context(
    new_context: Callable[..., BrowserContext], metaudit_server: MetAuditServer
) -> BrowserContext:
    """A browser in which owner1 (packet viewer of PR0001 only) signed in through the UI."""
    context = new_context()
    login_through_ui(context, metaudit_server, "owner1")
    return context


@pytest.fixture(scope="module")
def admin_context(
    new_context: Callable[..., BrowserContext], metaudit_server: MetAuditServer
) -> BrowserContext:
    """A browser in which the Airflow admin signed in through the UI."""
    context = new_context()
    login_through_ui(context, metaudit_server, "admin")
    return context


@pytest.fixture(scope="session")
def e2e_artifacts_dir() -> Path:
    """A stable folder for artefacts the README points to (build/ is git-ignored)."""
    folder = REPO / "build" / "e2e"
    folder.mkdir(parents=True, exist_ok=True)
    return folder
