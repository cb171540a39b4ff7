"""`dag.test()` of met_compliance_nightly end to end on a small demo database.

Each run happens in a subprocess with its own AIRFLOW_HOME (Airflow reads its
configuration once, at import), whose metadata database is migrated once for
the module. The results store is the default one: results.sqlite in the data
folder (METAUDIT_DATA_DIR).

Five runs in all. The first three share one data folder and send the morning
email through the real sendgrid client to a SendGrid test double on localhost
(connection ``sendgrid_default``): the first run, a rerun of the date (nothing
sent twice, packets kept), and a rerun with ``resend_email`` and
``rebuild_packets`` in which SendGrid refuses one practice's mail (that
practice fails alone, the admins are alerted through the double). The fourth
uses the embedded default (.eml files only) and damages one practice's
partition; the fifth reads a source where one practice's rows hold unreadable
values (bytes that are not UTF-8, an int beyond 64 bits). Those two audit in two
processes a task, as `make demo` does (METAUDIT_AUDIT_PROCESSES=2): extract reads
in a forked process, and each practice of the task is audited in a part of its own.
"""

from __future__ import annotations

import email
import email.policy
import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pandas as pd
import pytest
from builders import ORPHAN_SESSION, demo_source_fixture
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sendgrid_double import Recorded, Reply, SendGridDouble, error_reply

from metaudit.demo import GenerationReport
from metaudit.mail.outbox import DIGEST, Outbox
from metaudit.results import ResultsStore, default_url

pytestmark = [pytest.mark.airflow, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
AS_OF = date(2026, 3, 31)
PRACTICES = ["PR0001", "PR0002", "PR0003"]
PACKET_KEY = "dag-test-packet-key-0123456789"
# The deployment's Ed25519 key, given to the tasks as connection met_packet_signing_key.
SIGNING_KEY = Ed25519PrivateKey.generate()
SIGNING_PEM = SIGNING_KEY.private_bytes(
    serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
).decode()
API_KEY = "SG.dag-test-key-that-must-never-leak"
AIRFLOW_UI = "https://airflow.example.org"
LEADS = {p: f"Lead {p} <lead-{p.lower()}@practice.example>" for p in PRACTICES}
VOLATILE = {"practice_runs": ("run_id", "timings", "started_at", "finished_at")}
RESULT_TABLES = ("findings", "finding_history", "practice_runs", "practices", "alerts")
# The runs that mail through the double: one practice a task asked for, and Airflow
# maps at most two tasks, so the three practices must go in two tasks (PR0001..PR0002
# and PR0003): a network with more practices than the mapping cap still runs.
OVER_THE_CAP = {"METAUDIT_PRACTICES_PER_TASK": "1", "AIRFLOW__CORE__MAX_MAP_LENGTH": "2"}
GROUPS = {"PR0001": "PR0001..PR0002 (2)", "PR0002": "PR0001..PR0002 (2)", "PR0003": "PR0003"}
# As `make demo` runs the DAG on a machine of two cores.
TWO_PROCESSES = {"METAUDIT_AUDIT_PROCESSES": "2"}

# Runs one dag.test() of the DAG folder's nightly DAG. With "damage", the partition
# of that practice is damaged right after extract writes it (its claims table).
RUNNER = """
import json, sys
from datetime import datetime

args = json.loads(sys.argv[1])
if args.get("damage"):
    from metaudit.source import snapshot

    write = snapshot.write_partition

    def write_partition(part, practice_id, as_of, folder):
        written = write(part, practice_id, as_of, folder)
        if practice_id == args["damage"]:
            (written / "claims.arrow").write_bytes(b"damaged on disk")
        return written

    snapshot.write_partition = write_partition

from airflow.dag_processing.dagbag import DagBag

bag = DagBag(dag_folder=args["dags"], safe_mode=False)
assert not bag.import_errors, bag.import_errors
run = bag.dags["met_compliance_nightly"].test(
    logical_date=datetime.fromisoformat(args["logical_date"]), run_conf=args.get("conf")
)

# What each task instance ended as, and what it handed on (XCom: ids and paths only),
# keyed "task_id[practice]" and task_id -> practice.
from sqlalchemy import select
from airflow.models.taskinstance import TaskInstance
from airflow.models.xcom import XComModel
from airflow.utils.session import create_session

def value(state):
    return getattr(state, "value", state)

with create_session() as session:
    tis = session.scalars(
        select(TaskInstance).where(TaskInstance.run_id == run.run_id)
    ).all()
    label = {(ti.task_id, ti.map_index): ti.rendered_map_index or str(ti.map_index) for ti in tis}
    states = {
        f"{ti.task_id}[{label[ti.task_id, ti.map_index]}]": [value(ti.state), ti.try_number]
        for ti in tis
    }
    xcoms = {}
    for row in session.scalars(
        XComModel.get_many(run_id=run.run_id, key="return_value", dag_ids=run.dag_id)
    ):
        where = label.get((row.task_id, row.map_index), str(row.map_index))
        xcoms.setdefault(row.task_id, {})[where] = XComModel.deserialize_value(row)
print("RESULT " + json.dumps({"state": value(run.state), "run_id": run.run_id,
                              "tasks": states, "xcoms": xcoms}, default=str))
"""


def _airflow_env(
    home: Path,
    data: Path,
    source: Path,
    *,
    sendgrid: str | None = None,
    config: Path | None = None,
    extra: dict[str, str] | None = None,
) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "METAUDIT"))}
    env.update(
        AIRFLOW_HOME=str(home),
        AIRFLOW__CORE__DAGS_FOLDER=str(ROOT / "dags"),
        AIRFLOW__CORE__LOAD_EXAMPLES="False",
        AIRFLOW__CORE__UNIT_TEST_MODE="False",
        METAUDIT_DATA_DIR=str(data),
        METAUDIT_PACKET_KEY=PACKET_KEY,
        AIRFLOW_CONN_MET_PRACTICE_DB=json.dumps({"conn_type": "sqlite", "host": str(source)}),
        AIRFLOW_CONN_MET_PACKET_SIGNING_KEY=json.dumps(
            {"conn_type": "generic", "password": SIGNING_PEM}
        ),
    )
    if sendgrid:
        # The real sendgrid client, pointed at the double by the connection's host.
        env["AIRFLOW_CONN_SENDGRID_DEFAULT"] = json.dumps(
            {"conn_type": "http", "host": sendgrid, "password": API_KEY}
        )
    if config:
        env["METAUDIT_CONFIG"] = str(config)
    env.update(extra or {})
    return env


class PracticeDouble(SendGridDouble):
    """The SendGrid double, refusing (401) the morning email of the practices in ``refuse``."""

    def __init__(self) -> None:
        super().__init__()
        self.refuse: set[str] = set()

    def _next(self, request: Recorded) -> tuple[Reply, int]:
        reply, number = super()._next(request)
        practice = (request.json.get("custom_args") or {}).get("practice_id")
        if practice in self.refuse:
            return error_reply(401, "The provided authorization grant is invalid"), number
        return reply, number


@pytest.fixture(scope="module")
def double() -> Iterator[PracticeDouble]:
    server = PracticeDouble()
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def mail_config(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A configuration with a verified sender, admins, the UI's address and each practice's lead."""
    path = tmp_path_factory.mktemp("config") / "metaudit.yaml"
    leads = "\n".join(f'  {p}:\n    compliance_leads: ["{lead}"]' for p, lead in LEADS.items())
    path.write_text(
        "email:\n"
        '  sender: "MET Audit <audit@example.org>"\n'
        "  admins: [ops@example.org]\n"
        f"  airflow_base_url: {AIRFLOW_UI}\n"
        "  timeout_seconds: 5\n"
        "  max_attempts: 2\n"
        "  backoff_seconds: 0\n"
        f"practices:\n{leads}\n",
        encoding="utf-8",
    )
    return path


# The demo source: three practices, every defect, and a session of a client that does not exist.
demo = demo_source_fixture(as_of=AS_OF, sessions=3000, practices=3)


@pytest.fixture(scope="module")
def airflow_home(tmp_path_factory: pytest.TempPathFactory, demo: GenerationReport) -> Path:
    """An AIRFLOW_HOME whose metadata database (SQLite) is migrated once for the module."""
    home = tmp_path_factory.mktemp("airflow_home")
    env = _airflow_env(home, home / "data", Path(str(demo.database)))
    done = subprocess.run(
        [str(Path(sys.executable).parent / "airflow"), "db", "migrate"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return home


def run_dag(
    home: Path,
    data: Path,
    demo: GenerationReport,
    *,
    conf: dict[str, Any] | None = None,
    damage: str | None = None,
    logical_date: str = "2026-03-31T00:00:00+00:00",
    sendgrid: str | None = None,
    config: Path | None = None,
    source: Path | None = None,
    extra: dict[str, str] | None = None,
) -> dict[str, Any]:
    args = {
        "dags": str(ROOT / "dags"),
        "logical_date": logical_date,
        "conf": conf,
        "damage": damage,
    }
    done = subprocess.run(
        [sys.executable, "-c", RUNNER, json.dumps(args)],
        env=_airflow_env(
            home,
            data,
            source or Path(str(demo.database)),
            sendgrid=sendgrid,
            config=config,
            extra=extra,
        ),
        capture_output=True,
        text=True,
        timeout=600,
    )
    lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    assert done.returncode == 0 and lines, done.stdout[-5000:] + done.stderr[-5000:]
    (data / "dag-test.log").write_text(done.stdout + done.stderr, encoding="utf-8")
    return json.loads(lines[-1].removeprefix("RESULT "))


def practice_results(run: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """What the run's audit tasks handed on, by practice (findings, email, packets)."""
    merged: dict[str, dict[str, Any]] = {}
    for result in run["xcoms"].get("audit", {}).values():
        merged.update(result["practices"])
    return merged


def contents(store: ResultsStore) -> dict[str, list[tuple]]:
    return {t: store.table_contents(t, exclude=VOLATILE.get(t, ())) for t in RESULT_TABLES}


def _key(x: Any) -> tuple:
    return tuple(
        getattr(x, f)
        for f in ("rule_id", "entity_type", "entity_id", "practice_id", "client_id", "due_date")
    )


def _outbox_files(data: Path) -> dict[str, bytes]:
    """Every file of the mail outbox (records, .eml, alerts) by relative path."""
    root = data / "outbox"
    return {
        str(f.relative_to(root)): f.read_bytes()
        for f in sorted(root.rglob("*"))
        if f.is_file() and not f.name.endswith(".lock")
    }


def _packet_files(data: Path) -> dict[str, tuple[bytes, int]]:
    """Every packet by relative path: its bytes and modification time."""
    root = data / "packets"
    return {
        str(f.relative_to(root)): (f.read_bytes(), f.stat().st_mtime_ns)
        for f in sorted(root.rglob("*.zip"))
    }


def _digest_posts(requests: list[Recorded]) -> dict[str, list[dict[str, Any]]]:
    posts: dict[str, list[dict[str, Any]]] = {}
    for request in requests:
        body = request.json
        if body["custom_args"].get("kind") != "alert":
            posts.setdefault(body["custom_args"]["practice_id"], []).append(body)
    return posts


def _alert_posts(requests: list[Recorded]) -> list[dict[str, Any]]:
    return [r.json for r in requests if r.json["custom_args"].get("kind") == "alert"]


def _nightly_run(
    airflow_home: Path,
    data: Path,
    demo: GenerationReport,
    double: PracticeDouble,
    mail_config: Path,
) -> dict[str, Any]:
    """One run of the date without conf on ``data``, mailing through the double, and what it
    left: the run, the results store's contents, the mail it sent, the outbox and the packets."""
    sent_before = len(double.requests)
    run = run_dag(
        airflow_home, data, demo, sendgrid=double.host, config=mail_config, extra=OVER_THE_CAP
    )
    store = ResultsStore(default_url(data))
    snapshot = contents(store)
    store.close()
    return {
        "data": data,
        "run": run,
        "contents": snapshot,
        "requests": double.requests[sent_before:],
        "outbox": _outbox_files(data),
        "packets": _packet_files(data),
    }


@pytest.fixture(scope="module")
def first_run(
    airflow_home: Path,
    demo: GenerationReport,
    tmp_path_factory: pytest.TempPathFactory,
    double: PracticeDouble,
    mail_config: Path,
) -> dict[str, Any]:
    """The first run of the date, on a fresh data folder."""
    return _nightly_run(airflow_home, tmp_path_factory.mktemp("data"), demo, double, mail_config)


@pytest.fixture(scope="module")
def rerun(
    first_run: dict[str, Any],
    airflow_home: Path,
    demo: GenerationReport,
    double: PracticeDouble,
    mail_config: Path,
) -> dict[str, Any]:
    """The same date again, as the next night's retry or an admin's rerun would."""
    return _nightly_run(airflow_home, first_run["data"], demo, double, mail_config)


@pytest.fixture(scope="module")
def resend_run(
    rerun: dict[str, Any],
    first_run: dict[str, Any],
    airflow_home: Path,
    demo: GenerationReport,
    double: PracticeDouble,
    mail_config: Path,
) -> Iterator[dict[str, Any]]:
    """A rerun from the trigger form with resend_email and rebuild_packets, while SendGrid
    refuses PR0002's mail."""
    sent_before = len(double.requests)
    double.refuse = {"PR0002"}
    try:
        run = run_dag(
            airflow_home,
            first_run["data"],
            demo,
            conf={"resend_email": True, "rebuild_packets": True},
            sendgrid=double.host,
            config=mail_config,
            extra=OVER_THE_CAP,
        )
    finally:
        double.refuse = set()
    yield {"run": run, "requests": double.requests[sent_before:]}


def test_nightly_run_stores_each_practice_s_findings_and_status(
    first_run: dict[str, Any], demo: GenerationReport
) -> None:
    assert first_run["run"]["state"] == "success"
    store = ResultsStore(default_url(first_run["data"]))
    status = {r["practice_id"]: r for r in store.practice_runs(AS_OF)}
    assert {p: (r["status"], r["run_id"]) for p, r in status.items()} == {
        p: ("success", first_run["run"]["run_id"]) for p in [*PRACTICES, None]
    }
    for practice_id in PRACTICES:
        stored = store.findings(AS_OF, practice_id)
        truth = [e for e in demo.expected if e.practice_id == practice_id]
        assert sorted(map(_key, stored)) == sorted(map(_key, truth)), practice_id
        row = status[practice_id]
        assert row["findings"] == len(truth)
        assert row["critical"] + row["warning"] + row["notice"] == len(truth)
        assert {"read_partition", "derive", "validate", "persist"} <= set(row["timings"])
        assert Path(row["results_dir"], "findings.csv").exists()
    # The session whose client does not exist names no practice: stored under practice NULL.
    assert [f.entity_id for f in store.findings(AS_OF, None)] == [f"sessions:{ORPHAN_SESSION}"]
    run = store.run(first_run["run"]["run_id"])
    assert run is not None
    assert (run["status"], run["practice_ids"], run["failed_practices"]) == (
        "success",
        PRACTICES,
        [],
    )
    assert run["unattributed_findings"] == 1 and {"read", "type", "partition"} <= set(
        run["timings"]
    )
    assert store.alerts() == []
    digest = store.digest("PR0001", AS_OF)
    assert len(digest.new) == status["PR0001"]["findings"] and not digest.still_open
    tasks = first_run["run"]["tasks"]
    assert {name: state for name, (state, _) in tasks.items()} == {
        "plan[-1]": "success",
        "extract[-1]": "success",
        "finish[-1]": "success",
        "audit[PR0001..PR0002 (2)]": "success",
        "audit[PR0003]": "success",
    }
    for row in status.values():
        if row["practice_id"] is not None:
            assert {"notify", "packets"} <= set(row["timings"])
    store.close()


def test_each_practice_gets_one_morning_email_through_sendgrid(
    first_run: dict[str, Any],
) -> None:
    data, run_id = first_run["data"], first_run["run"]["run_id"]
    # One POST per practice, to its own lead, from the real sendgrid client.
    posts = _digest_posts(first_run["requests"])
    assert {p: len(bodies) for p, bodies in posts.items()} == {p: 1 for p in PRACTICES}
    assert _alert_posts(first_run["requests"]) == []
    assert {r.path for r in first_run["requests"]} == {"/v3/mail/send"}
    assert all(r.headers["Authorization"] == f"Bearer {API_KEY}" for r in first_run["requests"])

    outbox = Outbox(data / "outbox")
    assert [p.name for p in outbox.eml_files(AS_OF.isoformat())] == [f"{p}.eml" for p in PRACTICES]
    store = ResultsStore(default_url(data))
    results = {p: r["email"] for p, r in practice_results(first_run["run"]).items()}
    for practice_id in PRACTICES:
        (body,) = posts[practice_id]
        assert body["personalizations"][0]["to"] == [
            {"name": f"Lead {practice_id}", "email": f"lead-{practice_id.lower()}@practice.example"}
        ]
        eml = outbox.paths(DIGEST, AS_OF.isoformat(), practice_id).eml
        message = email.message_from_bytes(eml.read_bytes(), policy=email.policy.default)
        # The subject carries the digest's counts.
        digest = store.digest(practice_id, AS_OF)
        new_critical = sum(t.finding.severity == "critical" for t in digest.new)
        opened = len(digest.new) + len(digest.still_open)
        subject = str(message["Subject"])
        assert subject == body["subject"]
        assert subject.startswith(f"[MET Audit] {digest.practice_name}: ")
        assert f"{new_critical} new critical, {opened} open" in subject, subject
        assert subject.endswith(f"({AS_OF.isoformat()})")
        # Links to this run in the Airflow UI and to the practice's packets page.
        text = message.get_body(("plain",)).get_content()
        html = message.get_body(("html",)).get_content()
        run_link = f"{AIRFLOW_UI}/dags/met_compliance_nightly/runs/{quote(run_id, safe='')}"
        assert run_link in text and run_link.replace("&", "&amp;") in html
        assert re.search(
            rf"{re.escape(AIRFLOW_UI)}/metaudit/packets\?practice_id={practice_id}&as_of=", text
        )
        record = outbox.load(DIGEST, AS_OF.isoformat(), practice_id)
        assert record is not None and record.state == "sent" and len(record.deliveries) == 1
        result = results[practice_id]
        assert (result["status"], result["recipients"]) == ("sent", 1)
        assert result["eml_path"] == str(eml)
    store.close()


def _active_clients(demo: GenerationReport, practice_id: str) -> list[str]:
    from metaudit.check.engine import load_source
    from metaudit.check.view import build_view
    from metaudit.packets import clients_with_activity

    view = build_view(load_source(str(demo.database), AS_OF), pd.Timestamp(AS_OF), [practice_id])
    return clients_with_activity(view)


def test_every_active_client_and_each_practice_gets_a_packet_that_verifies(
    first_run: dict[str, Any], demo: GenerationReport
) -> None:
    from metaudit.packets import verify_packet
    from metaudit.packets.keypair import PublicKey

    public = PublicKey(SIGNING_KEY.public_key())
    root = first_run["data"] / "packets"
    results = {p: r["packets"] for p, r in practice_results(first_run["run"]).items()}
    for practice_id in PRACTICES:
        active = _active_clients(demo, practice_id)
        assert active, practice_id  # the check below checked something
        folder = root / practice_id / AS_OF.isoformat()
        assert sorted(p.stem for p in folder.glob("*.zip")) == sorted(active)
        for packet in folder.glob("*.zip"):
            check = verify_packet(packet, PACKET_KEY)
            assert check.intact, check.problems
            assert not check.manifest["demo_key"]  # outside the demo, the deployment's key
            # Signed for auditors with the key of the connection: checked without the secret.
            assert check.ed25519_key_id == public.key_id
            assert verify_packet(packet, public_keys=[public]).intact
        month = root / practice_id / "practice-2026-03.zip"
        check = verify_packet(month, PACKET_KEY)
        assert check.intact and check.manifest["client_packets"] == len(active)
        result = results[practice_id]
        assert (result["client_packets"], result["states"]) == (len(active), {"built": len(active)})


def test_rerun_of_the_same_date_changes_nothing_and_sends_nothing(
    first_run: dict[str, Any], rerun: dict[str, Any]
) -> None:
    assert rerun["run"]["state"] == "success"
    assert rerun["run"]["run_id"] != first_run["run"]["run_id"]
    # The results store: exactly that day's findings, no duplicates.
    assert rerun["contents"] == first_run["contents"]
    assert sum(len(rows) for rows in rerun["contents"].values()) > 100  # compared something
    store = ResultsStore(default_url(first_run["data"]))
    assert store.run(first_run["run"]["run_id"]) and store.run(rerun["run"]["run_id"])
    assert {r["run_id"] for r in store.practice_runs(AS_OF)} == {rerun["run"]["run_id"]}
    store.close()
    # No second email: nothing posted, the outbox untouched.
    assert rerun["requests"] == []
    assert rerun["outbox"] == first_run["outbox"]
    results = practice_results(rerun["run"])
    assert {p: r["email"]["status"] for p, r in results.items()} == {
        p: "already_sent" for p in PRACTICES
    }
    # Packets that verify are kept as they are, not built again.
    assert rerun["packets"] == first_run["packets"]
    for result in results.values():
        assert set(result["packets"]["states"]) == {"kept"}


def test_resend_and_rebuild_and_a_refused_mail_fails_its_practice_alone(
    first_run: dict[str, Any], rerun: dict[str, Any], resend_run: dict[str, Any]
) -> None:
    run = resend_run["run"]
    assert run["state"] == "failed"
    # resend_email: every practice's mail posted again; PR0002's refused (401, not retried).
    posts = _digest_posts(resend_run["requests"])
    assert {p: len(bodies) for p, bodies in posts.items()} == {p: 1 for p in PRACTICES}
    outbox = Outbox(first_run["data"] / "outbox")
    records = {p: outbox.load(DIGEST, AS_OF.isoformat(), p) for p in PRACTICES}
    for practice_id in ("PR0001", "PR0003"):
        record = records[practice_id]
        assert record is not None and (record.state, len(record.deliveries)) == ("sent", 2)
    refused = records["PR0002"]
    assert refused is not None and refused.state == "pending"  # kept for the next run
    assert refused.errors[-1]["status"] == 401 and len(refused.deliveries) == 1
    tasks = run["tasks"]
    # PR0002's task fails once (refused: no retry), after PR0001 finished; PR0003's is fine.
    assert tasks["audit[PR0001..PR0002 (2)]"] == ["failed", 1]
    assert tasks["audit[PR0003]"][0] == "success"
    assert tasks["finish[-1]"][0] == "failed"
    # rebuild_packets: built again, byte for byte the same; a failed email does not stop them.
    assert (first_run["data"] / "packets" / "PR0002" / "practice-2026-03.zip").exists()
    assert _packet_files(first_run["data"]) == rerun["packets"]

    store = ResultsStore(default_url(first_run["data"]))
    status = {r["practice_id"]: r for r in store.practice_runs(AS_OF)}
    assert status["PR0002"]["status"] == "failed" and status["PR0002"]["has_results"]
    assert status["PR0002"]["error"].startswith("MailRejectedError")
    assert status["PR0001"]["status"] == status["PR0003"]["status"] == "success"
    record = store.run(run["run_id"])
    assert record is not None
    assert (record["status"], record["failed_practices"]) == ("failed", ["PR0002"])
    # The admins hear of both failures through the same SendGrid path, once each.
    alerts = {(a["task_id"], a["practice_id"]): a for a in store.alerts(run["run_id"])}
    # The practice's own alert (its stage), its task's and the run's; mailed once each for
    # the task and the run, the task's mail naming the practice and stage.
    assert set(alerts) == {("audit.notify", "PR0002"), ("audit", None), ("finish", None)}
    assert all(a["notified_at"] is not None for a in alerts.values())
    assert "audit failed for practice(s) PR0002" in alerts["finish", None]["error"]
    assert "PR0002 at audit.notify (MailRejectedError)" in alerts["finish", None]["error"]
    assert "PR0002 at notify (MailRejectedError)" in alerts["audit", None]["error"]
    mailed = _alert_posts(resend_run["requests"])
    assert len(mailed) == 2
    assert all(m["personalizations"][0]["to"] == [{"email": "ops@example.org"}] for m in mailed)
    subjects = sorted(m["subject"] for m in mailed)
    assert subjects[0].startswith("[MET Audit] audit failed (run ")
    assert subjects[1].startswith("[MET Audit] finish failed (run ")
    assert all(API_KEY not in json.dumps(m) for m in mailed)
    store.close()


def test_a_practice_with_a_damaged_partition_fails_alone(
    airflow_home: Path, demo: GenerationReport, tmp_path: Path
) -> None:
    # A rerun of one date for two practices from the trigger form, the second one damaged;
    # no SendGrid connection: the embedded outbox.
    run = run_dag(
        airflow_home,
        tmp_path,
        demo,
        damage="PR0002",
        conf={"as_of": "2026-03-31", "practice_ids": ["PR0001", "PR0002"]},
        logical_date="2026-04-02T00:00:00+00:00",
        extra=TWO_PROCESSES,
    )
    assert run["state"] == "failed"
    store = ResultsStore(default_url(tmp_path))
    status = {r["practice_id"]: r for r in store.practice_runs(AS_OF)}
    assert set(status) == {"PR0001", "PR0002", None}  # PR0003 was not asked for
    assert status["PR0001"]["status"] == "success"
    truth = [e for e in demo.expected if e.practice_id == "PR0001"]
    assert sorted(map(_key, store.findings(AS_OF, "PR0001"))) == sorted(map(_key, truth))
    assert status["PR0002"]["status"] == "failed" and not status["PR0002"]["has_results"]
    assert "PartitionError" in status["PR0002"]["error"]
    record = store.run(run["run_id"])
    assert record is not None
    assert (record["status"], record["failed_practices"]) == ("failed", ["PR0002"])
    alerts = {(a["task_id"], a["practice_id"]): a for a in store.alerts(run["run_id"])}
    assert set(alerts) == {("audit.validate", "PR0002"), ("audit", None), ("finish", None)}
    assert alerts["audit.validate", "PR0002"]["try_number"] == 1  # not retried
    assert "audit failed for practice(s) PR0002" in alerts["finish", None]["error"]
    assert all(a["notified_at"] is not None for a in alerts.values())
    store.close()
    # PR0001 still got its email (an .eml: no API key) and its packets; PR0002 neither.
    outbox = Outbox(tmp_path / "outbox")
    assert [p.name for p in outbox.eml_files(AS_OF.isoformat())] == ["PR0001.eml"]
    message = email.message_from_bytes(
        (tmp_path / "outbox" / AS_OF.isoformat() / "PR0001.eml").read_bytes(),
        policy=email.policy.default,
    )
    assert " open" in str(message["Subject"]) and message.get_body(("plain",)) is not None
    # (Its task failed, for PR0002, so it handed nothing on: the outbox is the record.)
    record = outbox.load(DIGEST, AS_OF.isoformat(), "PR0001")
    assert record is not None and record.state == "written"
    assert (tmp_path / "packets" / "PR0001" / "practice-2026-03.zip").exists()
    assert not (tmp_path / "packets" / "PR0002").exists()
    # The admins' alerts took the same path: .eml files in the outbox, one per failure.
    alert_mails = sorted((tmp_path / "outbox" / AS_OF.isoformat() / "alerts").glob("*.eml"))
    assert len(alert_mails) == 2
    texts = [
        email.message_from_bytes(p.read_bytes(), policy=email.policy.default)
        .get_body(("plain",))
        .get_content()
        for p in alert_mails
    ]
    assert any("PR0002 at validate (PartitionError)" in t for t in texts)
    assert any("Practice: PR0001..PR0002 (2)" in t for t in texts)
    # PR0001 was audited in a forked part: its log lines reached the task's log.
    log = (tmp_path / "dag-test.log").read_text(encoding="utf-8")
    assert re.search(r"practice PR0001 as of 2026-03-31: \d+ findings; persist", log)


def test_unreadable_values_in_one_practice_never_stop_the_others(
    airflow_home: Path, demo: GenerationReport, tmp_path: Path
) -> None:
    """Rulebook reading 21: DQ-003 for the rows, and the run goes on for every practice."""
    import shutil
    import sqlite3

    source = tmp_path / "hostile.sqlite"
    shutil.copyfile(str(demo.database), source)
    with sqlite3.connect(source) as conn:
        (session_id,) = conn.execute(
            "SELECT s.session_id FROM sessions s JOIN clients c ON c.client_id = s.client_id "
            "WHERE c.practice_id = 'PR0002' ORDER BY s.session_id LIMIT 1"
        ).fetchone()
        conn.execute(
            "UPDATE sessions SET notes = ? WHERE session_id = ?", (b"\xff\xfe\xc3(", session_id)
        )
        conn.execute("UPDATE practices SET timezone = 'America' WHERE practice_id = 'PR0002'")
    data = tmp_path / "data"
    run = run_dag(
        airflow_home,
        data,
        demo,
        conf={"as_of": "2026-03-31", "practice_ids": ["PR0001", "PR0002"]},
        logical_date="2026-04-03T00:00:00+00:00",
        source=source,
        extra=TWO_PROCESSES,
    )
    assert run["state"] == "success", run["tasks"]
    store = ResultsStore(default_url(data))
    truth = [e for e in demo.expected if e.practice_id == "PR0001"]
    assert sorted(map(_key, store.findings(AS_OF, "PR0001"))) == sorted(map(_key, truth))
    dq3 = {f.entity_id for f in store.findings(AS_OF, "PR0002") if f.rule_id == "DQ-003"}
    assert {f"sessions:{session_id}", "practices:PR0002"} <= dq3
    store.close()
