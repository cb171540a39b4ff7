"""The DAG folder imports cleanly on Airflow 3.3 and every DAG follows the house rules."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

DAGS = Path(__file__).resolve().parents[2] / "dags"


@pytest.fixture(scope="module")
def dagbag(tmp_path_factory: pytest.TempPathFactory):
    os.environ.setdefault("AIRFLOW_HOME", str(tmp_path_factory.mktemp("airflow_home")))
    os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
    from airflow.dag_processing.dagbag import DagBag

    # safe_mode=False, or a broken file lacking the words "airflow" and "dag" is skipped
    # silently (Airflow 3.3; include_examples= raises TypeError there).
    return DagBag(dag_folder=str(DAGS), safe_mode=False)


def test_no_import_errors(dagbag):
    assert dagbag.import_errors == {}


def test_nightly_dag_is_there(dagbag):
    assert "met_compliance_nightly" in dagbag.dags


def test_every_dag_has_tags_owner_docs_retries_and_an_alert(dagbag):
    assert dagbag.dags
    for dag_id, dag in dagbag.dags.items():
        assert dag.tags, f"{dag_id} has no tags"
        assert dag.doc_md, f"{dag_id} has no doc_md"
        for task in dag.tasks:
            where = f"{dag_id}.{task.task_id}"
            assert task.owner and task.owner != "airflow", f"{where} has no owner"
            assert task.doc_md, f"{where} has no doc_md (the UI explains each stage)"
            assert task.retries >= 1, f"{where} has no retries"
            assert task.retry_exponential_backoff, f"{where} retries without backoff"
            assert task.on_failure_callback, f"{where} alerts nobody when it fails"
            assert task.execution_timeout, f"{where} may run forever"


def test_nightly_dag_stages_and_their_wiring(dagbag):
    dag = dagbag.dags["met_compliance_nightly"]
    assert set(dag.task_ids) == {"plan", "extract", "audit", "finish"}
    tasks = dag.task_dict
    assert tasks["plan"].downstream_task_ids == {"extract"}
    assert tasks["extract"].downstream_task_ids == {"audit", "finish"}
    assert tasks["audit"].downstream_task_ids == {"finish"}
    # One mapped task per group of practices (Airflow's cost per task is paid once for
    # the group); the group's practices fail one by one, not together.
    assert type(tasks["audit"]).__name__.endswith("MappedOperator")
    assert tasks["audit"].map_index_template == "{{ practices }}"
    # The run's last task waits for every group, failed or not.
    assert tasks["finish"].trigger_rule == "all_done"
    assert dag.max_active_runs == 1
    # The UI explains the stages in words, not just a signature.
    assert len(tasks["audit"].doc_md) > 600
    for word in ("together", "email", "packets", "failure", "rebuild_packets"):
        assert word in tasks["audit"].doc_md, word


def test_retry_policy_retries_transient_errors_only(dagbag):
    from sqlalchemy.exc import OperationalError

    from metaudit.errors import ContractError, SettingsError, SourceUnavailableError
    from metaudit.mail.errors import (
        MailConfigError,
        MailDeliveryUncertainError,
        MailRejectedError,
        MailUnavailableError,
        OutboxError,
    )
    from metaudit.packets.errors import PacketBuildError, PacketKeyError
    from metaudit.pipeline.chunk import PracticesFailedInTaskError
    from metaudit.source.snapshot import PartitionError

    dag = dagbag.dags["met_compliance_nightly"]
    for task in dag.tasks:
        policy = task.retry_policy
        assert policy is not None, task.task_id

        def action(exc: BaseException, policy=policy) -> str:
            return policy.evaluate(exc, try_number=1, max_tries=3).action.value

        # A person has to act: no retry.
        assert action(ContractError({"sessions": []})) == "fail"
        assert action(SettingsError("bad")) == "fail"
        assert action(PartitionError("damaged")) == "fail"
        assert action(MailConfigError("no sender")) == "fail"
        assert action(MailRejectedError("401", status=401)) == "fail"
        assert action(MailDeliveryUncertainError("maybe sent", attempt_id="a1")) == "fail"
        assert action(PacketKeyError("no key")) == "fail"
        assert action(PracticesFailedInTaskError([])) == "fail"
        # Transient: retried with backoff.
        assert action(MailUnavailableError("503", status=503)) == "retry"
        assert action(SourceUnavailableError("down")) != "fail"
        assert action(OperationalError("SELECT 1", {}, Exception("gone"))) != "fail"
        assert action(OutboxError("locked")) != "fail"
        assert action(PacketBuildError("PR1", "2026-03-31", {"CL1": "OSError"})) != "fail"


def test_trigger_form_validates_its_params(dagbag):
    from airflow.sdk import Param
    from airflow.sdk.exceptions import ParamValidationError

    params = dagbag.dags["met_compliance_nightly"].params
    for name in ("as_of", "practice_ids", "resend_email", "rebuild_packets"):
        assert params.get_param(name).description, f"{name} has no description"
    as_of = params.get_param("as_of").schema
    assert Param("2026-03-31", **as_of).resolve() == "2026-03-31"
    assert Param(None, **as_of).resolve() is None
    for bad in ("yesterday", "2026-02-30", 20260331):
        with pytest.raises(ParamValidationError):
            Param(bad, **as_of).resolve()
    practices = params.get_param("practice_ids").schema
    assert Param(["PR0001"], **practices).resolve() == ["PR0001"]
    for bad in (["PR0001", "PR0001"], [""], "PR0001"):
        with pytest.raises(ParamValidationError):
            Param(bad, **practices).resolve()
    with pytest.raises(ParamValidationError):
        Param("yes", **params.get_param("resend_email").schema).resolve()


def test_dag_file_parses_fast_without_pandas_gx_or_arrow():
    """Parsing imports nothing heavy and takes well under 0.5 s once Airflow is imported
    (a DAG processor has it imported already); bench/bench_dag_parse.py gives the numbers."""
    code = (
        "import json, runpy, sys, time; import airflow.sdk; began = time.perf_counter(); "
        "runpy.run_path(sys.argv[1]); took = time.perf_counter() - began; "
        "heavy = [m for m in ('pandas', 'great_expectations', 'pyarrow', 'metaudit.packets') "
        "if m in sys.modules]; "
        "heavy += [m for m in sys.modules if m.startswith('metaudit.') "
        "and m not in ('metaudit.config', 'metaudit.errors')]; "
        "print(json.dumps({'heavy': heavy, 'seconds': took}))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(DAGS / "met_compliance_nightly.py")],
        capture_output=True,
        text=True,
        check=True,
    )
    parse = json.loads(out.stdout.strip().splitlines()[-1])
    assert parse["heavy"] == []  # the retry rules name the packet errors without importing
    assert parse["seconds"] < 0.5, parse
