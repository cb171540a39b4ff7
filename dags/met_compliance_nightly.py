"""
### MET compliance audit, nightly

Audits every practice of the source database (connection `met_practice_db`)
against the rulebook, one mapped task per practice, so one practice's failure
does not stop the others. Each practice's findings (`findings.jsonl`,
`findings.csv`) and Great Expectations results land under
`data/results/<as_of>/<practice_id>/`.

**Rerun** a date or a practice from the trigger form: set `as_of` and, if you
like, `practice_ids`. A rerun replaces that date's files for those practices.
"""

from __future__ import annotations

from datetime import timedelta

import pendulum
from airflow.sdk import (
    ExceptionRetryPolicy,
    Param,
    RetryAction,
    RetryRule,
    dag,
    get_current_context,
    task,
)

# Contract and settings errors need a person, not another try.
NO_RETRY_FOR_BAD_INPUT = ExceptionRetryPolicy(
    rules=[
        RetryRule(
            exception="metaudit.errors.ContractError",
            action=RetryAction.FAIL,
            reason="the source does not follow the data contract",
        ),
        RetryRule(
            exception="metaudit.errors.SettingsError",
            action=RetryAction.FAIL,
            reason="invalid configuration or trigger parameters",
        ),
    ]
)


@dag(
    dag_id="met_compliance_nightly",
    schedule="30 4 * * *",
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    tags=["met-audit", "compliance"],
    doc_md=__doc__,
    default_args={
        "owner": "met-audit",
        "retries": 2,
        "retry_delay": timedelta(minutes=2),
        "retry_exponential_backoff": True,
        "max_retry_delay": timedelta(minutes=20),
    },
    params={
        "as_of": Param(
            None,
            type=["null", "string"],
            format="date",
            title="As-of date",
            description="Audit the records as they stood on this date (default: the run's date).",
        ),
        "practice_ids": Param(
            [],
            type="array",
            items={"type": "string"},
            title="Practices",
            description="Practice ids to audit; empty audits every practice in the source.",
        ),
        "resend_email": Param(
            False, type="boolean", title="Resend email", description="Send the morning email again."
        ),
        "rebuild_packets": Param(
            False, type="boolean", title="Rebuild packets", description="Rebuild the audit packets."
        ),
    },
)
def met_compliance_nightly() -> None:
    @task(multiple_outputs=False, retry_policy=NO_RETRY_FOR_BAD_INPUT)
    def plan_run() -> dict[str, object]:
        """Resolve the as-of date and the practices to audit (reads only the practices table)."""
        from airflow.sdk import BaseHook

        from metaudit import orchestration

        context = get_current_context()
        params = context["params"]
        dag_run = context["dag_run"]
        # The run's date: its logical date when it has one (scheduled, `dags test DATE`),
        # else when it was triggered.
        run_date = (dag_run.logical_date or dag_run.run_after).date()
        as_of = orchestration.resolve_as_of(params.get("as_of"), run_date)
        source = orchestration.sqlalchemy_url_from_connection(
            BaseHook.get_connection("met_practice_db")
        )
        practices = orchestration.list_practices(source, list(params.get("practice_ids") or []))
        return {"as_of": as_of.isoformat(), "practice_ids": practices}

    @task
    def practice_ids(plan: dict[str, object]) -> list[str]:
        """The practices of this run, one mapped audit task each."""
        return list(plan["practice_ids"])  # type: ignore[call-overload]

    @task(
        multiple_outputs=False,
        retry_policy=NO_RETRY_FOR_BAD_INPUT,
        map_index_template="{{ task.op_kwargs['practice_id'] }}",
    )
    def audit_practice(practice_id: str, plan: dict[str, object]) -> dict[str, object]:
        """Extract one practice's records, validate them with the rulebook's GX suites and
        persist its findings and validation results under the run's as-of folder."""
        from datetime import date

        from airflow.sdk import BaseHook

        from metaudit import orchestration

        source = orchestration.sqlalchemy_url_from_connection(
            BaseHook.get_connection("met_practice_db")
        )
        return orchestration.audit_practice(
            source, practice_id, date.fromisoformat(str(plan["as_of"]))
        )

    @task(trigger_rule="all_done", retries=0)
    def summarize(audits: list[dict[str, object]], plan: dict[str, object]) -> str:
        """Log a short summary per practice; fail the run, naming them, when any practice
        failed (after every other practice has finished)."""
        import logging

        from airflow.sdk.exceptions import AirflowFailException

        from metaudit import orchestration

        done = [a for a in audits if a]
        summary = orchestration.summarize(done)  # type: ignore[arg-type]
        logging.getLogger(__name__).info("run summary:\n%s", summary)
        finished = {str(a["practice_id"]) for a in done}
        failed = sorted(set(plan["practice_ids"]) - finished)  # type: ignore[call-overload]
        if failed:
            raise AirflowFailException(f"audit failed for practice(s): {', '.join(failed)}")
        return summary

    plan = plan_run()
    audits = audit_practice.partial(plan=plan).expand(practice_id=practice_ids(plan))
    summarize(audits, plan)


met_compliance_nightly()
