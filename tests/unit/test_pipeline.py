"""What the nightly DAG's tasks call, run as plain functions (no scheduler).

A small demo network with every injected defect, plus one session whose client
does not exist (a finding no practice can be named for), goes through plan,
extract, validate, persist and finish; partitions are checked to keep the typed
frames exactly and to give the same findings as auditing the whole source.
"""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pandas as pd
import pytest
from builders import ORPHAN_SESSION, demo_source_fixture

from metaudit import paths
from metaudit.check.engine import check_typed, load_source
from metaudit.demo import GenerationReport
from metaudit.errors import SettingsError
from metaudit.pipeline import alerts, connections, stages
from metaudit.results import ResultsStore
from metaudit.source.snapshot import PartitionError, partition_of, read_partition, write_partitions
from metaudit.spec.findings import read_findings

AS_OF = date(2026, 3, 31)


# The demo source: two practices, every defect, and a session of a client that does not exist.
demo = demo_source_fixture(as_of=AS_OF, sessions=400, practices=2)


@pytest.fixture(scope="module")
def typed(demo: GenerationReport):
    return load_source(str(demo.database), AS_OF)


def _key(finding) -> tuple:
    return (
        finding.rule_id,
        finding.entity_type,
        finding.entity_id,
        finding.practice_id,
        finding.client_id,
        finding.due_date,
    )


# -- small pieces ----------------------------------------------------------------------------


def test_as_of_is_the_form_value_else_the_run_date() -> None:
    assert stages.resolve_as_of("2026-02-01", AS_OF) == date(2026, 2, 1)
    assert stages.resolve_as_of(None, AS_OF) == AS_OF
    with pytest.raises(SettingsError, match="as_of must be a date"):
        stages.resolve_as_of("yesterday", AS_OF)


@pytest.mark.parametrize(
    ("fields", "url"),
    [
        ({"conn_type": "sqlite", "host": "/data/p.sqlite"}, "sqlite:////data/p.sqlite"),
        (
            {
                "conn_type": "postgres",
                "host": "db",
                "login": "audit",
                "password": "s3cret",
                "port": 5432,
                "schema": "practice",
            },
            "postgresql+psycopg://audit:s3cret@db:5432/practice",
        ),
        (
            {"conn_type": "generic", "extra_dejson": {"sqlalchemy_url": "mssql+pyodbc://x"}},
            "mssql+pyodbc://x",
        ),
    ],
)
def test_connection_becomes_a_sqlalchemy_url(fields: dict, url: str) -> None:
    blank = {
        "host": None,
        "login": None,
        "password": None,
        "port": None,
        "schema": None,
        "extra_dejson": {},
    }
    conn = SimpleNamespace(conn_id="met_practice_db", **{**blank, **fields})
    assert connections.sqlalchemy_url_from_connection(conn) == url


def test_connection_of_an_unknown_type_is_refused_by_name() -> None:
    conn = SimpleNamespace(conn_id="met_results_db", conn_type="ftp", extra_dejson={})
    with pytest.raises(SettingsError, match=r"met_results_db.*'ftp'"):
        connections.sqlalchemy_url_from_connection(conn)


def test_unknown_practice_ids_are_refused_naming_them(demo: GenerationReport) -> None:
    source = str(demo.database)
    assert stages.list_practices(source) == ["PR0001", "PR0002"]
    assert stages.list_practices(source, ["PR0002"]) == ["PR0002"]
    with pytest.raises(SettingsError, match=r"PR0404, PR0405.*PR0001, PR0002"):
        stages.list_practices(source, ["PR0001", "PR0405", "PR0404"])


# -- partitions ------------------------------------------------------------------------------


def test_partitions_keep_every_dtype_mask_and_finding(typed, tmp_path: Path) -> None:
    folders = write_partitions(typed, ["PR0001", "PR0002"], AS_OF.isoformat(), tmp_path)
    for practice_id, folder in folders.items():
        expected = partition_of(typed, practice_id)
        back = read_partition(folder, practice_id)
        assert set(back.tables) == set(expected.tables)
        for name, frame in expected.tables.items():
            pd.testing.assert_frame_equal(back.tables[name], frame, check_exact=True)
            pd.testing.assert_frame_equal(back.unreadable[name], expected.unreadable[name])
        assert back.findings == expected.findings
        assert back.findings and {f.practice_id for f in back.findings} == {practice_id}
        assert len(back.tables["providers"]) == len(typed.tables["providers"])  # no practice
        assert set(back.tables["sessions"]["practice_id"]) == {practice_id}


def test_a_mask_without_unreadable_values_is_not_written(typed, tmp_path: Path) -> None:
    """Half a partition's files are masks, nearly all empty: only a mask holding an
    unreadable value is written, and a missing mask reads back all False."""
    from dataclasses import replace

    masks = dict(typed.unreadable)
    sessions = masks["sessions"].copy()
    sessions.iloc[0, 0] = True  # the first session of the network: one unreadable value
    masks["sessions"] = sessions
    marked = replace(typed, unreadable=masks)
    owner = str(typed.tables["sessions"]["practice_id"].iloc[0])
    folders = write_partitions(marked, [owner], AS_OF.isoformat(), tmp_path)
    folder = folders[owner]
    expected = partition_of(marked, owner)
    holding = sorted(n for n, mask in expected.unreadable.items() if mask.to_numpy().any())
    assert "sessions" in holding and len(holding) < len(expected.unreadable) / 2
    assert sorted(p.name for p in folder.glob("*.unreadable.arrow")) == [
        f"{name}.unreadable.arrow" for name in holding
    ]
    back = read_partition(folder, owner)
    for name, mask in expected.unreadable.items():
        pd.testing.assert_frame_equal(back.unreadable[name], mask)
    assert bool(back.unreadable["sessions"].iloc[0, 0])


def test_a_partition_gives_the_same_findings_as_the_whole_source(typed) -> None:
    whole = check_typed(typed, AS_OF, ["PR0002"])
    alone = check_typed(partition_of(typed, "PR0002"), AS_OF, ["PR0002"])
    assert whole.findings and alone.findings == whole.findings


def test_findings_that_name_no_practice_stay_out_of_every_partition(typed) -> None:
    orphans = [f for f in typed.findings if f.practice_id is None]
    assert [f.entity_id for f in orphans] == [f"sessions:{ORPHAN_SESSION}"]
    for practice_id in ("PR0001", "PR0002"):
        part = partition_of(typed, practice_id)
        assert ORPHAN_SESSION not in set(part.tables["sessions"]["session_id"])
        assert all(f.practice_id == practice_id for f in part.findings)


def test_a_damaged_partition_is_refused_naming_what_is_wrong(typed, tmp_path: Path) -> None:
    folder = write_partitions(typed, ["PR0001"], AS_OF.isoformat(), tmp_path)["PR0001"]
    with pytest.raises(PartitionError, match="holds practice 'PR0001', not 'PR0002'"):
        read_partition(folder, "PR0002")
    (folder / "sessions.arrow").write_bytes(b"ARROW1 not really")
    with pytest.raises(PartitionError, match="table sessions unreadable"):
        read_partition(folder, "PR0001")
    (folder / "manifest.json").unlink()
    with pytest.raises(PartitionError, match=r"no readable manifest\.json"):
        read_partition(folder, "PR0001")


def test_rewriting_a_partition_replaces_it_whole(typed, tmp_path: Path) -> None:
    folder = write_partitions(typed, ["PR0001"], AS_OF.isoformat(), tmp_path)["PR0001"]
    (folder / "stale.arrow").write_bytes(b"left over")
    write_partitions(typed, ["PR0001"], AS_OF.isoformat(), tmp_path)
    assert not (folder / "stale.arrow").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["PR0001"]  # nothing left aside


# -- the stages, end to end without Airflow ---------------------------------------------------


def test_stages_store_every_finding_and_a_damaged_practice_fails_alone(
    demo: GenerationReport, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("METAUDIT_DATA_DIR", str(tmp_path))
    store_url = f"sqlite:///{tmp_path / 'results.sqlite'}"
    source = str(demo.database)

    plan = stages.plan_run(source, store_url, run_id="r1", dag_id="met", as_of=AS_OF)
    assert plan == {"as_of": "2026-03-31", "practice_ids": ["PR0001", "PR0002"]}
    work = stages.extract(source, AS_OF, plan["practice_ids"], store_url=store_url, run_id="r1")
    assert [w["practice_id"] for w in work] == ["PR0001", "PR0002"]
    for item in work:
        validated = stages.validate_practice(item["practice_id"], item["partition"], item["as_of"])
        assert set(validated) == {
            "practice_id",
            "as_of",
            "partition",
            "out_dir",
            "findings",
            "timings",
        }
        assert Path(validated["out_dir"], "findings.csv").exists()
        # The exposure of every finding lies beside the findings, in their order.
        findings = Path(validated["out_dir"], "findings.jsonl").read_text().splitlines()
        exposure = Path(validated["out_dir"], "exposure.jsonl").read_text().splitlines()
        assert [json.loads(e)["fingerprint"] for e in exposure] == [
            json.loads(f)["fingerprint"] for f in findings
        ]
        assert Path(validated["out_dir"], "exposure.csv").exists()
        assert sorted(p.stem for p in Path(validated["out_dir"], "validation").iterdir()) == [
            "clm",
            "cod",
            "doc",
            "elg",
            "rea",
            "ref",
        ]
        stages.persist_practice(store_url, "r1", validated)
    summary = stages.finish_run(store_url, "r1", extracted_ok=True)
    assert "PR0001:" in summary and "(no practice): 1 findings" in summary
    # Every practice finished: the date's partitions (copies of the records) are gone.
    assert not paths.snapshot_dir("2026-03-31").exists()

    store = ResultsStore(store_url)
    stored = [f for p in ("PR0001", "PR0002") for f in store.findings(AS_OF, p)]
    assert sorted(map(_key, stored)) == sorted(map(_key, demo.expected))
    assert [f.entity_id for f in store.findings(AS_OF, None)] == [f"sessions:{ORPHAN_SESSION}"]
    assert read_findings(paths.unattributed_path("2026-03-31")) == store.findings(AS_OF, None)
    status = {r["practice_id"]: r for r in store.practice_runs(AS_OF)}
    assert {p: r["status"] for p, r in status.items()} == {
        None: "success",
        "PR0001": "success",
        "PR0002": "success",
    }
    assert {"read_partition", "view", "derive", "validate", "persist"} <= set(
        status["PR0001"]["timings"]
    )
    run = store.run("r1")
    assert run is not None and (run["status"], run["unattributed_findings"]) == ("success", 1)
    assert {"read", "type", "partition"} <= set(run["timings"])

    # Second run of the date: PR0002's partition is damaged, so it fails alone.
    stages.plan_run(source, store_url, run_id="r2", dag_id="met", as_of=AS_OF)
    work = stages.extract(source, AS_OF, ["PR0001", "PR0002"])
    Path(work[1]["partition"], "claims.arrow").write_bytes(b"damaged")
    stages.persist_practice(
        store_url,
        "r2",
        stages.validate_practice("PR0001", work[0]["partition"], "2026-03-31"),
    )
    with pytest.raises(PartitionError) as failure:
        stages.validate_practice("PR0002", work[1]["partition"], "2026-03-31")
    # The callback finds the store through the met_results_db connection (Airflow's side
    # is covered by the DAG tests); here it is the test's store.
    monkeypatch.setattr(connections, "results_url", lambda: store_url)
    ti = SimpleNamespace(
        dag_id="met",
        run_id="r2",
        task_id="practice.validate",
        map_index=1,
        try_number=1,
        rendered_map_index="PR0002",
        log_url="http://airflow/log",
    )
    alerts.alert_admins(
        {
            "ti": ti,
            "exception": failure.value,
            "task": SimpleNamespace(op_kwargs={"work": {"practice_id": "PR0002"}}),
        }
    )
    with pytest.raises(stages.PracticesFailedError, match=r"practice\(s\) PR0002;") as finished:
        stages.finish_run(store_url, "r2", extracted_ok=True)
    # The finish alert names the failed practices and where each one failed, though the
    # DAG's finish task hands Airflow an AirflowFailException made from this error.
    assert "PR0002 at practice.validate (PartitionError)" in str(finished.value)
    from airflow.sdk.exceptions import AirflowFailException

    try:
        raise AirflowFailException(str(finished.value)) from finished.value
    except AirflowFailException as wrapped:
        _, text = alerts.alert_text(
            SimpleNamespace(**{**vars(ti), "task_id": "finish"}), None, AS_OF, wrapped, None
        )
    assert "PR0002 at practice.validate (PartitionError)" in text
    assert "its message is in the task log" not in text
    # A practice failed: the partitions stay so that its tasks can be cleared and retried.
    assert Path(work[0]["partition"]).is_dir()

    status = {r["practice_id"]: r for r in store.practice_runs(AS_OF)}
    assert (status["PR0001"]["status"], status["PR0001"]["run_id"]) == ("success", "r2")
    assert (status["PR0002"]["status"], status["PR0002"]["has_results"]) == ("failed", True)
    assert status["PR0002"]["error"].startswith("PartitionError: partition")
    assert len(store.findings(AS_OF, "PR0002")) > 0  # the first run's results stay
    (alert,) = store.alerts("r2")
    assert (alert["practice_id"], alert["task_id"], alert["as_of"]) == (
        "PR0002",
        "practice.validate",
        AS_OF,
    )
    run = store.run("r2")
    assert run is not None and (run["status"], run["failed_practices"]) == ("failed", ["PR0002"])
    store.close()


def test_old_partitions_are_removed_and_the_keep_days_are_checked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import os
    import time

    for day in ("2026-03-01", "2026-03-20", "2026-03-31"):
        (tmp_path / day / "PR0001").mkdir(parents=True)
    old = time.time() - 8 * 86_400
    os.utime(tmp_path / "2026-03-01", (old, old))
    removed = stages.retire_snapshots("2026-03-31", keep_own=True, root=tmp_path)
    assert removed == [tmp_path / "2026-03-01"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["2026-03-20", "2026-03-31"]
    monkeypatch.setenv("METAUDIT_SNAPSHOT_KEEP_DAYS", "0")
    stages.retire_snapshots("2026-03-31", keep_own=True, root=tmp_path)
    assert [p.name for p in tmp_path.iterdir()] == ["2026-03-31"]
    stages.retire_snapshots("2026-03-31", keep_own=False, root=tmp_path)
    assert list(tmp_path.iterdir()) == []
    assert stages.retire_snapshots("2026-03-31", keep_own=False, root=tmp_path / "x") == []
    monkeypatch.setenv("METAUDIT_SNAPSHOT_KEEP_DAYS", "a week")
    with pytest.raises(SettingsError, match="METAUDIT_SNAPSHOT_KEEP_DAYS must be a whole number"):
        stages.retire_snapshots("2026-03-31", keep_own=False, root=tmp_path)


def test_finish_of_a_run_that_never_got_past_plan_says_so(tmp_path: Path) -> None:
    with pytest.raises(stages.RunNotPlannedError, match="never got past planning"):
        stages.finish_run(f"sqlite:///{tmp_path / 'r.sqlite'}", "r9", extracted_ok=False)


# -- after persist: the morning email and the packets ----------------------------------------


PACKET_KEY = "orchestration-test-packet-key"


@pytest.fixture
def persisted(
    demo: GenerationReport, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> dict[str, Any]:
    """PR0001 planned, extracted, validated and persisted into a store under tmp_path."""
    monkeypatch.setenv("METAUDIT_DATA_DIR", str(tmp_path))
    monkeypatch.delenv("METAUDIT_CONFIG", raising=False)
    monkeypatch.delenv("METAUDIT_PACKET_KEY", raising=False)
    monkeypatch.delenv("METAUDIT_PACKET_SIGNING_KEY", raising=False)
    monkeypatch.delenv("METAUDIT_PACKETS_DIR", raising=False)
    store_url = f"sqlite:///{tmp_path / 'results.sqlite'}"
    source = str(demo.database)
    stages.plan_run(source, store_url, run_id="r1", dag_id="met", as_of=AS_OF, wanted=["PR0001"])
    (work,) = stages.extract(source, AS_OF, ["PR0001"], store_url=store_url, run_id="r1")
    validated = stages.validate_practice("PR0001", work["partition"], work["as_of"])
    stored = stages.persist_practice(store_url, "r1", validated)
    assert stored["partition"] == work["partition"]
    assert stored["out_dir"] == validated["out_dir"]
    return {"store_url": store_url, "persisted": stored, "data": tmp_path}


def test_persist_stores_the_exposure_beside_the_findings(
    persisted: dict[str, Any], demo: GenerationReport
) -> None:
    import sqlite3

    from metaudit.check.exposure import read_exposure

    store = ResultsStore(persisted["store_url"])
    rows = read_exposure(Path(persisted["persisted"]["out_dir"], "exposure.jsonl"))
    stored = store.exposure(AS_OF, "PR0001")
    findings = {f.fingerprint: f for f in store.findings(AS_OF, "PR0001")}
    assert set(stored) == {r["fingerprint"] for r in rows} == set(findings)
    for row in rows:
        money = stored[row["fingerprint"]]
        assert (
            money.lines,
            money.fix_before_billing,
            money.in_flight,
            money.recoupment_risk,
            money.total,
        ) == (
            row["lines"],
            row["fix_before_billing"],
            row["in_flight"],
            row["recoupment_risk"],
            row["total"],
        )
    assert sum(m.total for m in stored.values()) > 0
    # Each finding on a claim, claim line or claim diagnosis names its claim.
    with sqlite3.connect(demo.database) as conn:
        claim_of_line = dict(conn.execute("SELECT line_id, claim_id FROM claim_lines"))
    on_lines = [f for f in findings.values() if f.entity_type == "claim_line"]
    assert on_lines, "the demo's audit should find claim lines"
    for f in on_lines:
        assert stored[f.fingerprint].claim_id == claim_of_line[f.entity_id]
    for f in findings.values():
        if f.entity_type == "claim":
            assert stored[f.fingerprint].claim_id == f.entity_id
        elif f.entity_type in ("client", "session", "referral"):
            assert stored[f.fingerprint].claim_id is None
    store.close()


def test_persist_stores_the_draft_claims_filing_deadlines(persisted: dict[str, Any]) -> None:
    from metaudit.paths import DEADLINES_FILE
    from metaudit.results.digest import read_deadlines

    written = read_deadlines(Path(persisted["persisted"]["out_dir"], DEADLINES_FILE))
    assert written, "the demo has draft claims not yet submitted"
    store = ResultsStore(persisted["store_url"])
    assert store.filing_deadlines(AS_OF, "PR0001") == sorted(
        written, key=lambda d: (d.deadline, d.claim_id)
    )
    store.close()


def test_persist_stores_each_findings_staff_and_payer_from_the_source(
    persisted: dict[str, Any], demo: GenerationReport
) -> None:
    import sqlite3

    import sqlalchemy as sa

    store = ResultsStore(persisted["store_url"])
    with store.engine.connect() as conn:
        stored = {
            row.fingerprint: (row.staff_id, row.payer)
            for row in conn.execute(sa.text("SELECT * FROM finding_attribution"))
        }
    findings = {f.fingerprint: f for f in store.findings(AS_OF, "PR0001")}
    exposure = store.exposure(AS_OF, "PR0001")
    with sqlite3.connect(demo.database) as conn:
        staff_of = dict(conn.execute("SELECT session_id, staff_id FROM sessions"))
        payer_of_claim = dict(
            conn.execute(
                "SELECT c.claim_id, p.payer_name FROM claims c "
                "JOIN insurance_policies p ON p.policy_id = c.policy_id"
            )
        )
    sessions = [f for f in findings.values() if f.entity_type == "session"]
    assert sessions, "the demo's audit should find sessions"
    for f in sessions:
        assert stored[f.fingerprint][0] == staff_of[f.entity_id]
    on_claims = [fp for fp, money in exposure.items() if money.claim_id in payer_of_claim]
    assert on_claims
    for fp in on_claims:
        assert stored[fp][1] == payer_of_claim[exposure[fp].claim_id]
    store.close()


def _plain_text(eml: Path) -> str:
    import email
    import email.policy

    message = email.message_from_bytes(eml.read_bytes(), policy=email.policy.default)
    return str(message.get_body(("plain",)).get_content())


def test_notify_writes_the_practice_s_email_with_links_to_the_run_and_packets(
    persisted: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    import email
    import email.policy

    monkeypatch.setenv("AIRFLOW__API__BASE_URL", "https://airflow.example.org/")
    result = stages.notify_practice(
        persisted["store_url"], "manual__2026-03-31T05:30:00+00:00", persisted["persisted"]
    )
    eml = persisted["data"] / "outbox" / "2026-03-31" / "PR0001.eml"
    assert (result["status"], result["eml_path"]) == ("written", str(eml))
    message = email.message_from_bytes(eml.read_bytes(), policy=email.policy.default)
    store = ResultsStore(persisted["store_url"])
    digest = store.digest("PR0001", AS_OF)
    store.close()
    assert f"{len(digest.new)} open" in str(message["Subject"])
    text = message.get_body(("plain",)).get_content()
    assert (
        "https://airflow.example.org/dags/met_compliance_nightly/runs/"
        "manual__2026-03-31T05%3A30%3A00%2B00%3A00" in text
    )
    assert (
        "https://airflow.example.org/metaudit/packets?practice_id=PR0001&as_of=2026-03-31" in text
    )


def test_the_configured_ui_address_wins_over_airflow_s(
    persisted: dict[str, Any], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    config = tmp_path / "metaudit.yaml"
    config.write_text(
        "email:\n  airflow_base_url: https://audit.example.org\n"
        "  packets_base_url: https://packets.example.org\n",
        encoding="utf-8",
    )
    monkeypatch.setenv("AIRFLOW__API__BASE_URL", "https://airflow.example.org")
    result = stages.notify_practice(
        persisted["store_url"], "r1", persisted["persisted"], config=str(config)
    )
    text = _plain_text(Path(result["eml_path"]))
    assert "https://audit.example.org/dags/met_compliance_nightly/runs/r1" in text
    assert "https://packets.example.org/metaudit/packets?practice_id=PR0001" in text
    assert "airflow.example.org" not in text


def test_packets_are_built_signed_then_kept_and_refused_without_a_key(
    persisted: dict[str, Any],
) -> None:
    from metaudit.packets import PacketKeyError, verify_packet

    built = stages.build_packets(persisted["persisted"], key=PACKET_KEY)
    folder = Path(built["folder"])
    assert folder == persisted["data"] / "packets" / "PR0001" / "2026-03-31"
    packets = sorted(folder.glob("*.zip"))
    assert len(packets) == built["client_packets"] > 0
    assert built["states"] == {"built": len(packets)} and not built["demo_key"]
    assert all(verify_packet(p, PACKET_KEY).intact for p in packets)
    assert verify_packet(Path(built["practice_packet"]), PACKET_KEY).intact
    again = stages.build_packets(persisted["persisted"], key=PACKET_KEY)
    assert again["states"] == {"kept": len(packets)}
    with pytest.raises(PacketKeyError):
        stages.build_packets(persisted["persisted"], rebuild=True)
    demo_built = stages.build_packets(persisted["persisted"], demo=True, rebuild=True)
    assert demo_built["demo_key"] and demo_built["states"] == {"built": len(packets)}
    # The demo signs for auditors with its published Ed25519 key too.
    from metaudit.packets.keypair import demo_signing_key

    assert demo_built["ed25519_key_id"] == demo_signing_key().public.key_id
    assert built["ed25519_key_id"] is None  # no signing key: the HMAC alone


def test_packets_are_signed_with_the_ed25519_key_the_task_passes(
    persisted: dict[str, Any],
) -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from metaudit.packets import verify_packet
    from metaudit.packets.keypair import PublicKey

    private = Ed25519PrivateKey.generate()
    pem = private.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    built = stages.build_packets(persisted["persisted"], key=PACKET_KEY, signing_key=pem)
    public = PublicKey(private.public_key())
    assert built["ed25519_key_id"] == public.key_id
    packets = sorted(Path(built["folder"]).glob("*.zip"))
    assert packets and all(verify_packet(p, public_keys=[public]).intact for p in packets)
    assert verify_packet(Path(built["practice_packet"]), public_keys=[public]).intact


def test_packets_carry_the_acceptances_the_store_holds_for_the_date(
    persisted: dict[str, Any],
) -> None:
    import zipfile

    from metaudit.packets.build import ACCEPTANCES_FILE

    first = stages.build_packets(persisted["persisted"], key=PACKET_KEY)
    with_packets = {p.stem for p in Path(first["folder"]).glob("*.zip")}
    store = ResultsStore(persisted["store_url"])
    finding = next(f for f in store.findings(AS_OF, "PR0001") if f.client_id in with_packets)
    store.accept_finding(
        "PR0001",
        finding.fingerprint,
        user_name="lead",
        reason="payer exception",
        until=AS_OF,
        today=AS_OF,
    )
    store.close()
    built = stages.build_packets(
        persisted["persisted"], key=PACKET_KEY, store_url=persisted["store_url"]
    )
    # Only the packet of the client whose finding was accepted is built again.
    assert built["states"] == {"built": 1, "kept": len(with_packets) - 1}
    packet = Path(built["folder"]) / f"{finding.client_id}.zip"
    with zipfile.ZipFile(packet) as archive:
        accepted = archive.read(ACCEPTANCES_FILE).decode()
    assert finding.fingerprint in accepted and "payer exception" in accepted
    with zipfile.ZipFile(built["practice_packet"]) as archive:
        assert finding.fingerprint in archive.read(ACCEPTANCES_FILE).decode()


def _policy():
    from airflow.sdk import ExceptionRetryPolicy, RetryAction, RetryRule

    from metaudit.mail.errors import MailRejectedError

    return ExceptionRetryPolicy(rules=[RetryRule(MailRejectedError, action=RetryAction.FAIL)])


def _stage_context(try_number: int, max_tries: int = 2) -> dict[str, Any]:
    task = SimpleNamespace(retry_policy=_policy())
    return {
        "run_id": "r1",
        "ti": SimpleNamespace(try_number=try_number, max_tries=max_tries, task=task),
    }


def test_a_stage_that_fails_for_good_marks_its_practice_failed_first(
    persisted: dict[str, Any],
) -> None:
    from metaudit.mail.errors import MailRejectedError, MailUnavailableError

    store_url, practice = persisted["store_url"], persisted["persisted"]
    store = ResultsStore(store_url)

    def status() -> tuple[str, str | None]:
        (row,) = [r for r in store.practice_runs(AS_OF) if r["practice_id"] == "PR0001"]
        return row["status"], row["error"]

    # A failure that will be retried leaves the practice as persist left it.
    with (
        pytest.raises(MailUnavailableError),
        alerts.practice_stage(_stage_context(try_number=1), store_url, practice),
    ):
        raise MailUnavailableError("SendGrid answered 503", status=503)
    assert status() == ("success", None)
    # The last try, or an error the policy does not retry, marks it failed at once.
    with (
        pytest.raises(MailUnavailableError),
        alerts.practice_stage(_stage_context(try_number=3), store_url, practice),
    ):
        raise MailUnavailableError("SendGrid answered 503", status=503)
    assert status() == ("failed", "MailUnavailableError: SendGrid answered 503")
    stages.persist_practice(
        store_url,
        "r1",
        {
            **practice,
            "findings": str(Path(practice["out_dir"]) / "findings.jsonl"),
            "timings": str(Path(practice["out_dir"]) / paths.TIMINGS_FILE),
        },
    )
    with (
        pytest.raises(MailRejectedError),
        alerts.practice_stage(_stage_context(try_number=1), store_url, practice),
    ):
        raise MailRejectedError("SendGrid refused the mail (401)", status=401)
    assert status()[0] == "failed"
    # finish names it, though its findings are stored.
    with pytest.raises(stages.PracticesFailedError, match=r"practice\(s\) PR0001;"):
        stages.finish_run(store_url, "r1", extracted_ok=False)
    store.close()


def _failed_ti(**overrides: Any) -> SimpleNamespace:
    fields = {
        "dag_id": "met_compliance_nightly",
        "run_id": "r1",
        "task_id": "practice.notify",
        "map_index": 0,
        "try_number": 1,
        "rendered_map_index": "PR0001",
        "log_url": "https://airflow.example.org/log",
    }
    return SimpleNamespace(**{**fields, **overrides})


def test_an_alert_is_recorded_and_mailed_to_the_outbox_once(
    persisted: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    import email
    import email.policy

    from metaudit.mail.errors import MailRejectedError

    monkeypatch.setattr(connections, "results_url", lambda: persisted["store_url"])
    context = {
        "ti": _failed_ti(),
        "exception": MailRejectedError("SendGrid refused the mail (401)", status=401),
        "task": SimpleNamespace(op_kwargs={"persisted": persisted["persisted"]}),
    }
    alerts.alert_admins(context)
    alerts.alert_admins(context)  # a callback run twice mails once
    folder = persisted["data"] / "outbox" / "2026-03-31" / "alerts"
    (eml,) = sorted(folder.glob("*.eml"))
    message = email.message_from_bytes(eml.read_bytes(), policy=email.policy.default)
    assert str(message["Subject"]) == (
        "[MET Audit] practice.notify failed for practice PR0001 (run r1)"
    )
    text = message.get_body(("plain",)).get_content()
    assert "Practice: PR0001" in text and "MailRejectedError: SendGrid refused" in text
    assert "Task log: https://airflow.example.org/log" in text
    store = ResultsStore(persisted["store_url"])
    rows = store.alerts("r1")
    assert len(rows) == 2 and all(a["notified_at"] is not None for a in rows)
    assert all(a["practice_id"] == "PR0001" for a in rows)
    store.close()


def test_an_alert_names_no_record_values_of_foreign_errors() -> None:
    subject, text = alerts.alert_text(
        _failed_ti(task_id="practice.persist"),
        "PR0001",
        AS_OF,
        ValueError("duplicate key: ('Jane Roe', '1950-02-03')"),
        None,
    )
    assert "ValueError" in text and "Jane Roe" not in text and "1950" not in subject + text


def test_an_alert_never_raises_when_mail_cannot_go_out(
    persisted: dict[str, Any], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(connections, "results_url", lambda: persisted["store_url"])
    # A broken configuration: the alert still lands in the outbox.
    broken = tmp_path / "broken.yaml"
    broken.write_text("email:\n  sender: not an address\n", encoding="utf-8")
    monkeypatch.setenv("METAUDIT_CONFIG", str(broken))
    alerts.alert_admins({"ti": _failed_ti(try_number=1), "exception": None})
    assert len(list((persisted["data"] / "outbox").rglob("alerts/*.eml"))) == 1
    # SendGrid unreachable (nothing listens there): logged, not raised; the record waits.
    config = tmp_path / "ok.yaml"
    config.write_text(
        'email:\n  sender: "MET Audit <audit@example.org>"\n  admins: [ops@example.org]\n'
        "  timeout_seconds: 1\n  max_attempts: 1\n",
        encoding="utf-8",
    )
    monkeypatch.setenv("METAUDIT_CONFIG", str(config))
    monkeypatch.setattr(
        connections, "sendgrid_credentials", lambda: ("SG.key", "http://127.0.0.1:9")
    )
    alerts.alert_admins({"ti": _failed_ti(try_number=2), "exception": None})
    store = ResultsStore(persisted["store_url"])
    notified = [a["notified_at"] is not None for a in store.alerts("r1")]
    store.close()
    assert notified == [True, False]
    # The store unreachable too: still nothing raised.
    monkeypatch.setattr(connections, "results_url", lambda: "not a database url")
    alerts.alert_admins({"ti": _failed_ti(try_number=3), "exception": None})


def test_finish_posts_a_refused_alert_and_marks_it_notified(
    persisted: dict[str, Any], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from sendgrid_double import SendGridDouble, error_reply

    store_url = persisted["store_url"]
    monkeypatch.setattr(connections, "results_url", lambda: store_url)
    config = tmp_path / "ok.yaml"
    config.write_text(
        'email:\n  sender: "MET Audit <audit@example.org>"\n  admins: [ops@example.org]\n'
        "  timeout_seconds: 2\n  max_attempts: 1\n",
        encoding="utf-8",
    )
    monkeypatch.setenv("METAUDIT_CONFIG", str(config))
    double = SendGridDouble()
    double.start()
    try:
        monkeypatch.setattr(connections, "sendgrid_credentials", lambda: ("SG.key", double.host))
        double.script(error_reply(401, "The provided authorization grant is invalid"))
        alerts.alert_admins({"ti": _failed_ti(map_index=0), "exception": None})
        store = ResultsStore(store_url)
        (alert,) = store.alerts("r1")
        store.close()
        assert alert["notified_at"] is None and alert["map_index"] == 0

        # The key is fixed; the run's last task posts the alert that waited in the outbox
        # (and still fails the run: the practice failed).
        with pytest.raises(stages.PracticesFailedError):
            stages.finish_run(
                store_url, "r1", extracted_ok=False, api_key="SG.key", host=double.host
            )
        assert len(double.requests) == 2
        assert double.requests[-1].json["subject"].startswith("[MET Audit] practice.notify failed")
    finally:
        double.stop()
    store = ResultsStore(store_url)
    (alert,) = store.alerts("r1")
    store.close()
    assert alert["notified_at"] is not None
    assert alerts.alert_key(_failed_ti(map_index=0)).endswith(".practice.notify.0.try1")


def test_finish_reports_alerts_still_pending(
    persisted: dict[str, Any],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    store_url = persisted["store_url"]
    monkeypatch.setattr(connections, "results_url", lambda: store_url)
    config = tmp_path / "ok.yaml"
    config.write_text(
        'email:\n  sender: "MET Audit <audit@example.org>"\n  admins: [ops@example.org]\n'
        "  timeout_seconds: 1\n  max_attempts: 1\n",
        encoding="utf-8",
    )
    monkeypatch.setenv("METAUDIT_CONFIG", str(config))
    # SendGrid unreachable (nothing listens there), when the alert is mailed and at finish.
    monkeypatch.setattr(
        connections, "sendgrid_credentials", lambda: ("SG.key", "http://127.0.0.1:9")
    )
    alerts.alert_admins({"ti": _failed_ti(), "exception": None})
    caplog.set_level("INFO", logger="metaudit.pipeline.stages")
    with pytest.raises(stages.PracticesFailedError):
        stages.finish_run(
            store_url, "r1", extracted_ok=False, api_key="SG.key", host="http://127.0.0.1:9"
        )
    summary = caplog.text
    assert "1 admin alert mail(s) still pending in the outbox" in summary
    store = ResultsStore(store_url)
    (alert,) = store.alerts("r1")
    store.close()
    assert alert["notified_at"] is None


def test_partitions_are_owner_only_whatever_the_umask(typed, tmp_path: Path) -> None:
    import os
    import stat

    old = os.umask(0o022)
    try:
        root = tmp_path / "snapshots" / AS_OF.isoformat()
        folder = write_partitions(typed, ["PR0001"], AS_OF.isoformat(), root)["PR0001"]
    finally:
        os.umask(old)
    modes = {stat.S_IMODE(p.stat().st_mode) for p in folder.iterdir()}
    assert modes == {0o600}
    for item in (folder, root, root.parent):
        assert stat.S_IMODE(item.stat().st_mode) == 0o700, item


def test_persist_without_the_partition_stores_the_money_without_line_claims(
    demo: GenerationReport, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog
) -> None:
    import shutil

    monkeypatch.setenv("METAUDIT_DATA_DIR", str(tmp_path))
    store_url = f"sqlite:///{tmp_path / 'results.sqlite'}"
    source = str(demo.database)
    stages.plan_run(source, store_url, run_id="r1", dag_id="met", as_of=AS_OF, wanted=["PR0001"])
    (work,) = stages.extract(source, AS_OF, ["PR0001"], store_url=store_url, run_id="r1")
    validated = stages.validate_practice("PR0001", work["partition"], work["as_of"])
    shutil.rmtree(work["partition"])
    stages.persist_practice(store_url, "r1", validated)
    assert "findings on claim lines are stored without their claim" in caplog.text
    store = ResultsStore(store_url)
    stored = store.exposure(AS_OF, "PR0001")
    findings = store.findings(AS_OF, "PR0001")
    assert set(stored) == {f.fingerprint for f in findings}
    for f in findings:
        if f.entity_type == "claim_line":
            assert stored[f.fingerprint].claim_id is None
        elif f.entity_type == "claim":
            assert stored[f.fingerprint].claim_id == f.entity_id
    store.close()
