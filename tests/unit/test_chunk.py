"""A task of the nightly run audits a group of practices (metaudit.pipeline.chunk).

Grouping stays within Airflow's mapping cap for any number of practices; checking
a group together writes every practice's results exactly as checking it alone
(findings, exposure, deadlines byte for byte; its share of the GX results counts
what its own validation counts); and one practice's failure is recorded against
it and its stage while the others finish.
"""

from __future__ import annotations

import json
import zipfile
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from builders import demo_source_fixture
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from metaudit.check.engine import load_source
from metaudit.demo import GenerationReport
from metaudit.mail.errors import MailUnavailableError
from metaudit.pipeline import chunk, stages
from metaudit.results import ResultsStore
from metaudit.source.snapshot import write_partitions

AS_OF = date(2026, 3, 31)
PRACTICES = ["PR0001", "PR0002", "PR0003"]
PACKET_KEY = "chunk-test-packet-key-0123456789"
# The Ed25519 key the task passes on from its connection (Ed25519 signing is deterministic).
SIGNING_KEY = (
    Ed25519PrivateKey.generate()
    .private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    .decode()
)

demo = demo_source_fixture(as_of=AS_OF, sessions=900, practices=3)


@pytest.fixture(scope="module")
def partitions(demo: GenerationReport, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    typed = load_source(str(demo.database), AS_OF)
    root = tmp_path_factory.mktemp("snapshots")
    folders = write_partitions(typed, PRACTICES, AS_OF.isoformat(), root)
    return {p: str(folder) for p, folder in folders.items()}


# -- grouping --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("practices", "per_task", "cap", "sizes"),
    [
        (3, 10, 1024, [3]),
        (20, 10, 1024, [10, 10]),
        (21, 10, 1024, [7, 7, 7]),
        (2000, 10, 1024, [10] * 200),
        # More practices than Airflow maps tasks: the groups grow, the tasks stay at the cap.
        (2000, 1, 1024, [2] * 976 + [1] * 48),
        (3, 1, 2, [2, 1]),
    ],
)
def test_groups_cover_every_practice_once_within_the_cap(
    practices: int, per_task: int, cap: int, sizes: list[int]
) -> None:
    ids = [f"PR{n:05d}" for n in range(practices)]
    groups = chunk.chunk_practices(ids, per_task, cap)
    assert [len(g) for g in groups] == sizes
    assert len(groups) <= cap
    assert [p for g in groups for p in g] == ids
    assert chunk.chunk_practices([], per_task, cap) == []


def test_work_items_name_their_practices_and_partitions() -> None:
    work = [
        {"practice_id": p, "as_of": "2026-03-31", "partition": f"/s/{p}"}
        for p in ("PR2", "PR1", "PR3")
    ]
    chunks = chunk.chunk_work(work, per_task=2, max_tasks=1024)
    assert [c["label"] for c in chunks] == ["PR1..PR2 (2)", "PR3"]
    assert chunks[0]["practices"] == [
        {"practice_id": "PR1", "partition": "/s/PR1"},
        {"practice_id": "PR2", "partition": "/s/PR2"},
    ]
    assert {c["as_of"] for c in chunks} == {"2026-03-31"}
    with pytest.raises(ValueError, match=">= 1"):
        chunk.chunk_practices(["PR1"], 0, 10)
    # A task of two processes takes two practices for each: one task of the three here.
    (both,) = chunk.chunk_work(work, per_task=2, max_tasks=1024, processes=2)
    assert both["label"] == "PR1..PR3 (3)"


# -- checked together, written as alone ----------------------------------------------------


def test_a_group_checked_together_writes_what_each_practice_alone_would(
    partitions: dict[str, str], tmp_path: Path
) -> None:
    from metaudit.packets.build import evidence_from_audit_dir
    from metaudit.packets.content import suites_of
    from metaudit.source.snapshot import read_partition

    parts = {p: read_partition(Path(partitions[p]), p) for p in PRACTICES}
    together, failures = chunk.validate_practices(
        parts, partitions, AS_OF.isoformat(), out_root=tmp_path / "together"
    )
    assert failures == [] and sorted(together) == PRACTICES
    findings = 0
    for practice_id in PRACTICES:
        alone = stages.validate_practice(
            practice_id,
            partitions[practice_id],
            AS_OF.isoformat(),
            out_root=tmp_path / "alone",
        )
        joint = Path(together[practice_id]["out_dir"])
        own = Path(alone["out_dir"])
        for name in (
            "findings.jsonl",
            "findings.csv",
            "exposure.jsonl",
            "exposure.csv",
            "filing_deadlines.jsonl",
        ):
            assert (joint / name).read_bytes() == (own / name).read_bytes(), (practice_id, name)
        findings += len((own / "findings.jsonl").read_text().splitlines())
        # The practice's share of the GX results counts what its own validation counted.
        shared = suites_of(
            evidence_from_audit_dir(joint, practice_id, AS_OF.isoformat()), stages_families()
        )
        single = suites_of(
            evidence_from_audit_dir(own, practice_id, AS_OF.isoformat()), stages_families()
        )
        assert [s.suite_name for s in shared] == [s.suite_name for s in single]
        for a, b in zip(shared, single, strict=True):
            assert a.practice_rows == b.practice_rows, (practice_id, a.frame)
            assert _counts(a) == _counts(b), (practice_id, a.frame)
        document = json.loads((joint / "validation" / "doc.json").read_text())
        share_of = [r["meta"]["metaudit"].get("share_of") for r in document]
        assert share_of and all(
            s == {"practice_id": practice_id, "practices_validated_together": 3} for s in share_of
        )
    assert findings > 20  # the comparison compared something


def stages_families() -> tuple[str, ...]:
    from metaudit.check.derive import FAMILIES

    return FAMILIES


def _counts(suite: Any) -> list[tuple[Any, ...]]:
    return [
        (
            ref.rule_id,
            ref.practice_success,
            ref.practice_result.get("element_count"),
            ref.practice_result.get("unexpected_count"),
            sorted(ref.practice_result.get("partial_unexpected_index_list") or []),
        )
        for ref in suite.expectations
    ]


# -- failures stay with their practice ------------------------------------------------------


def _run_chunk(
    partitions: dict[str, str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    *,
    is_final: Any,
    processes: int = 1,
) -> tuple[str, dict[str, Any] | BaseException]:
    monkeypatch.setenv("METAUDIT_DATA_DIR", str(tmp_path / "data"))
    store_url = f"sqlite:///{tmp_path / 'results.sqlite'}"
    from metaudit.results import session

    with session(store_url) as store:
        store.start_run("r1", "met_compliance_nightly", AS_OF, [], PRACTICES, {})
    work = {
        "as_of": AS_OF.isoformat(),
        "label": "PR0001..PR0003 (3)",
        "practices": [{"practice_id": p, "partition": partitions[p]} for p in PRACTICES],
    }
    task = chunk.TaskRef(dag_id="met_compliance_nightly", run_id="r1", task_id="audit")
    try:
        return store_url, chunk.audit_chunk(
            store_url,
            work,
            task,
            is_final=is_final,
            packet_key=PACKET_KEY,
            packet_signing_key=SIGNING_KEY,
            processes=processes,
        )
    except Exception as exc:
        return store_url, exc


# Each test runs in the task's own process and in two forked parts (PR0002 alone in one):
# the failures come back to the task as they happened there.
IN_PROCESSES = pytest.mark.parametrize("processes", [1, 2], ids=["in-task", "two-parts"])


@IN_PROCESSES
def test_a_damaged_partition_fails_its_practice_alone(
    partitions: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, processes: int
) -> None:
    import shutil

    damaged = dict(partitions)
    copy = tmp_path / "PR0002"
    shutil.copytree(partitions["PR0002"], copy)
    (copy / "claims.arrow").write_bytes(b"damaged on disk")
    damaged["PR0002"] = str(copy)
    store_url, outcome = _run_chunk(
        damaged, tmp_path, monkeypatch, is_final=lambda exc: True, processes=processes
    )
    assert isinstance(outcome, chunk.PracticesFailedInTaskError)
    assert "PR0002 at validate (PartitionError)" in str(outcome)
    store = ResultsStore(store_url)
    status = {r["practice_id"]: r for r in store.practice_runs(AS_OF)}
    assert status["PR0002"]["status"] == "failed" and "PartitionError" in status["PR0002"]["error"]
    for practice_id in ("PR0001", "PR0003"):
        row = status[practice_id]
        assert row["status"] == "success" and row["findings"] > 0
        # Stage timings of every stage, in the store.
        assert {"derive", "validate", "persist", "notify", "packets"} <= set(row["timings"])
        assert (tmp_path / "data" / "outbox" / AS_OF.isoformat() / f"{practice_id}.eml").exists()
        assert (tmp_path / "data" / "packets" / practice_id / "practice-2026-03.zip").exists()
    (alert,) = store.alerts("r1")
    assert (alert["task_id"], alert["practice_id"]) == ("audit.validate", "PR0002")
    assert not (tmp_path / "data" / "packets" / "PR0002").exists()
    store.close()


@IN_PROCESSES
def test_a_failure_a_retry_may_mend_is_raised_after_the_others_finished(
    partitions: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, processes: int
) -> None:
    notify = stages.notify_practice

    def flaky(store_url: str, run_id: str, persisted: Any, **kwargs: Any) -> Any:
        if persisted["practice_id"] == "PR0001":
            raise MailUnavailableError("SendGrid answered 503")
        return notify(store_url, run_id, persisted, **kwargs)

    monkeypatch.setattr(stages, "notify_practice", flaky)
    store_url, outcome = _run_chunk(
        partitions, tmp_path, monkeypatch, is_final=lambda exc: False, processes=processes
    )
    # The error itself, for Airflow's retry policy (SendGrid unavailable: retried).
    assert isinstance(outcome, MailUnavailableError)
    store = ResultsStore(store_url)
    status = {r["practice_id"]: r["status"] for r in store.practice_runs(AS_OF)}
    # Not final: nothing is recorded as failed (the retry may succeed); the others are done.
    assert status == {p: "success" for p in PRACTICES}
    assert store.alerts("r1") == []
    outbox = tmp_path / "data" / "outbox" / AS_OF.isoformat()
    assert sorted(p.name for p in outbox.glob("*.eml")) == ["PR0002.eml", "PR0003.eml"]
    # PR0001's packets were still built: a failed email does not hold them back.
    assert (tmp_path / "data" / "packets" / "PR0001" / "practice-2026-03.zip").exists()
    store.close()

    # The packets made of the group's view and frames are, byte for byte, those made of the
    # practice's partition alone (its own view and derivation).
    from metaudit.packets import build_practice_packets
    from metaudit.source.snapshot import read_partition

    alone = tmp_path / "alone"
    day = AS_OF.isoformat()
    compared = 0
    for practice_id in PRACTICES:
        build_practice_packets(
            None,
            practice_id,
            AS_OF,
            audit_dir=tmp_path / "data" / "results" / day / practice_id,
            packets_dir=alone,
            key=PACKET_KEY,
            signing_key=SIGNING_KEY,
            typed=read_partition(Path(partitions[practice_id]), practice_id),
        )
        grouped = sorted((tmp_path / "data" / "packets" / practice_id / day).glob("*.zip"))
        own = sorted((alone / practice_id / day).glob("*.zip"))
        assert [p.name for p in grouped] == [p.name for p in own]
        assert all(a.read_bytes() == b.read_bytes() for a, b in zip(grouped, own, strict=True))
        with zipfile.ZipFile(grouped[0]) as archive:
            assert {"manifest.sig", "public_key.pem", "VERIFY.txt"} <= set(archive.namelist())
        compared += len(own)
    assert compared >= 3
