"""
### MET compliance audit, nightly

Audits every practice of the source database (connection `met_practice_db`)
against the rulebook and keeps the results in the results store (connection
`met_results_db`; without it, the SQLite file `results.sqlite` in the data
folder). Practices run in mapped tasks of a few practices each, and one practice's
failure does not stop the others.

**Stages**

1. `plan`: the as-of date (the form's `as_of`, else the run's date) and the
   practices (the form's `practice_ids`, else every practice in the source;
   an unknown id fails here, naming it). Records the run in the results store.
2. `extract`: reads and types the source, writes one typed partition per
   practice under `data/snapshots/<as_of>/<practice>/`, and the findings that
   name no practice (rows whose parent is missing, so no practice can be named)
   to `data/results/<as_of>/findings-without-practice.jsonl`; groups the
   practices into one work item per `audit` task (`METAUDIT_PRACTICES_PER_TASK`,
   default 10; larger groups when there are more practices than Airflow's
   `[core] max_map_length` lets a task map).
3. `audit` (mapped, one per group of practices): checks the group's practices
   together with the rulebook's Great Expectations suites and writes each
   practice's `findings.jsonl`, `findings.csv`, exposure and validation results
   under `data/results/<as_of>/<practice>/`; then, practice by practice,
   stores the findings (a rerun of the date replaces that date's findings,
   never duplicates them), the status and stage timings, recomputes the
   findings history (first seen, last seen, resolved on), sends the morning
   email (SendGrid through connection `sendgrid_default`; without it an `.eml`
   file in `data/outbox/<as_of>/`), once per as-of date, and builds the signed
   audit packets under `data/packets/<practice>/`. A practice's failure is
   recorded against it and its stage; the task's other practices go on.
4. `finish`: stores the findings without a practice under practice NULL,
   posts the admin alerts SendGrid refused or could not take earlier (still
   pending in the outbox), logs a per-practice summary, and fails the run
   naming the practices that failed in any stage, after all the others finished.

**Rerun** a date or a practice from the trigger form: set `as_of` and, if you
like, `practice_ids`. A rerun does not send an email that went out already
(tick `resend_email` to send it again) and keeps packets that still verify
(tick `rebuild_packets` to build them again). Source, database and SendGrid
outages are retried with backoff; contract and configuration errors, mail
that SendGrid refused, a mail whose delivery is uncertain and a missing packet
key are not. A task that fails for good records an alert in the results store
and mails it to the admins (`email.admins`) on the same path as the morning
email.

**Connections**: `met_practice_db` (the source, required), `met_results_db`
(default: `data/results.sqlite`), `sendgrid_default` (password: API key; host:
optional API address), `met_packet_key` (password: the packet signing key; or
the environment variable `METAUDIT_PACKET_KEY`), `met_packet_signing_key`
(password: the Ed25519 private key, PEM, auditors check packets with; or
`METAUDIT_PACKET_SIGNING_KEY`).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

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

from metaudit import config

# Early morning where the practices are; the run's date is its as-of date.
NIGHTLY_CRON, NIGHTLY_TIMEZONE = config.nightly_schedule()


class _RuleAtFailureTime(RetryRule):
    """A retry rule whose exception class is imported when a task fails, on the worker.

    RetryRule imports a dotted path when it is built; while Airflow parses it this file
    imports only metaudit.config, which needs nothing but the standard library
    (tests/unit/test_dag_integrity.py holds it to that), so the exceptions are looked up
    when they are needed.
    """

    def __post_init__(self) -> None:
        return None


def _fail(exception: str, reason: str) -> RetryRule:
    return _RuleAtFailureTime(exception=exception, action=RetryAction.FAIL, reason=reason)


# Bad input, configuration and refused mail need a person, not another try; SendGrid
# being unavailable (429, 5xx, timeouts) does not. First match wins; anything else
# (source or database unreachable, ...) gets the task's retries with backoff.
RETRY_POLICY = ExceptionRetryPolicy(
    rules=[
        _fail(
            "metaudit.errors.ContractError",
            "the source does not follow the data contract",
        ),
        _fail(
            "metaudit.errors.SettingsError",
            "invalid configuration, connection or trigger parameters",
        ),
        _fail(
            "metaudit.source.snapshot.PartitionError",
            "the practice's partition is damaged; rerun the date to extract it again",
        ),
        _fail(
            "metaudit.pipeline.chunk.PracticesFailedInTaskError",
            "some practices of the task failed for good (each named, the others finished)",
        ),
        _fail(
            "metaudit.mail.errors.MailRejectedError",
            "SendGrid refused the mail (key, verified sender, recipients or size); it stays "
            "pending in the outbox for the next run",
        ),
        _fail(
            "metaudit.mail.errors.MailDeliveryUncertainError",
            "an earlier try may have delivered the mail; check SendGrid's activity feed, then "
            "mark the task successful or rerun with resend_email",
        ),
        _fail(
            "metaudit.packets.errors.PacketKeyError",
            "no usable packet signing key (connection met_packet_key or METAUDIT_PACKET_KEY; "
            "the Ed25519 key: met_packet_signing_key or METAUDIT_PACKET_SIGNING_KEY)",
        ),
        _RuleAtFailureTime(
            exception="metaudit.mail.errors.MailUnavailableError",
            action=RetryAction.RETRY,
            reason="SendGrid stayed unavailable; the mail stays pending and is tried again",
        ),
    ]
)


def alert_admins(context: Any) -> None:
    """Failure callback: hands over to metaudit.pipeline.alerts.alert_admins (imported here,
    at failure time, so parsing the DAG stays light)."""
    from metaudit.pipeline.alerts import alert_admins as record_and_alert

    record_and_alert(context)


@dag(
    dag_id=config.DAG_ID,
    schedule=NIGHTLY_CRON,
    start_date=pendulum.datetime(2026, 1, 1, tz=NIGHTLY_TIMEZONE),
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
        "retry_policy": RETRY_POLICY,
        "execution_timeout": timedelta(hours=2),
        "on_failure_callback": alert_admins,
    },
    params={
        "as_of": Param(
            None,
            type=["null", "string"],
            format="date",
            title="As-of date",
            description="Audit the records as they stood on this date, YYYY-MM-DD "
            "(empty: the run's date). A rerun of a date replaces that date's results.",
        ),
        "practice_ids": Param(
            [],
            type="array",
            items={"type": "string", "minLength": 1},
            uniqueItems=True,
            title="Practices",
            description="Practice ids to audit, one per line (empty: every practice in the "
            "source). An id the source does not have fails the run before anything runs.",
        ),
        "resend_email": Param(
            False,
            type="boolean",
            title="Resend email",
            description="Send the morning email again even if it was sent for this date.",
        ),
        "rebuild_packets": Param(
            False,
            type="boolean",
            title="Rebuild packets",
            description="Build the audit packets again even if they exist for this date.",
        ),
    },
)
def met_compliance_nightly() -> None:
    @task(multiple_outputs=False)
    def plan() -> dict[str, Any]:
        """Resolve the as-of date and the practices to audit (reads only the source's
        practices table; unknown practice ids fail here) and record the run."""
        from metaudit.pipeline import connections, stages

        context = get_current_context()
        dag_run = context["dag_run"]
        # The run's date: its logical date when it has one (scheduled, `dags test DATE`),
        # else when it was triggered. Taken in UTC: the early-morning trigger time in the
        # practices' zone falls on the same date there.
        run_date = (dag_run.logical_date or dag_run.run_after).date()
        as_of = stages.resolve_as_of(context["params"].get("as_of"), run_date)
        return stages.plan_run(
            connections.source_url(),
            connections.results_url(),
            run_id=dag_run.run_id,
            dag_id=dag_run.dag_id,
            as_of=as_of,
            wanted=list(context["params"].get("practice_ids") or []),
        )

    @task
    def extract(plan: dict[str, Any]) -> list[dict[str, Any]]:
        """Read and type the source; write one typed partition per practice and the
        run-level findings that name no practice. One work item per `audit` task: a group
        of practices (METAUDIT_PRACTICES_PER_TASK, default 10; larger groups when the
        practices outnumber Airflow's `[core] max_map_length`)."""
        from datetime import date

        from airflow.sdk.configuration import conf

        from metaudit import config
        from metaudit.pipeline import chunk, connections, stages

        work = stages.extract(
            connections.source_url(),
            date.fromisoformat(plan["as_of"]),
            plan["practice_ids"],
            store_url=connections.results_url(),
            run_id=get_current_context()["run_id"],
            processes=config.audit_processes(),
        )
        return chunk.chunk_work(
            work,
            per_task=config.practices_per_task(),
            max_tasks=conf.getint("core", "max_map_length", fallback=1024),
            processes=config.audit_processes(),
        )

    @task(multiple_outputs=False, map_index_template="{{ practices }}")
    def audit(work: dict[str, Any]) -> dict[str, Any]:
        """Audit a group of practices: check them together (the rulebook's suites; each
        practice's findings, exposure and GX results in its own folder), then practice by
        practice store the findings (replacing the date's) and recompute the history,
        send the morning email and build the audit packets.

        Email: through SendGrid when connection `sendgrid_default` has an API key (its
        host, when set, replaces the API address), else an `.eml` file in
        `data/outbox/<as_of>/`; once per practice and date unless `resend_email`.
        Packets: signed with connection `met_packet_key` (else METAUDIT_PACKET_KEY) and,
        for auditors, `met_packet_signing_key` (else METAUDIT_PACKET_SIGNING_KEY; only
        the demo, METAUDIT_DEMO=1, signs with the published demo keys) under
        `data/packets/<practice>/`; packets that still hold are kept unless
        `rebuild_packets`. One practice's failure never stops the others: it is recorded
        against the practice and stage, and the task fails after the others finished."""
        from metaudit import config
        from metaudit.pipeline import alerts, chunk, connections

        context = get_current_context()
        context["practices"] = work["label"]  # type: ignore[typeddict-unknown-key]
        ti = context["ti"]
        api_key, host = connections.sendgrid_credentials()
        return chunk.audit_chunk(
            connections.results_url(),
            work,
            chunk.TaskRef(
                dag_id=ti.dag_id,
                run_id=ti.run_id,
                task_id=ti.task_id,
                map_index=ti.map_index if ti.map_index is not None else -1,
                try_number=ti.try_number,
                log_url=getattr(ti, "log_url", None),
            ),
            is_final=lambda exc: alerts.is_final_failure(context, exc),
            api_key=api_key,
            host=host,
            packet_key=connections.packet_key(),
            packet_signing_key=connections.packet_signing_key(),
            demo=config.demo_mode(),
            resend=bool(context["params"].get("resend_email")),
            rebuild=bool(context["params"].get("rebuild_packets")),
            processes=config.audit_processes(),
        )

    @task(trigger_rule="all_done")
    def finish(extracted: list[dict[str, Any]] | None) -> str:
        """Store the findings that name no practice, post admin alerts SendGrid refused
        earlier, log the per-practice summary, and fail the run naming the practices that
        failed (after all others finished)."""
        from airflow.sdk.exceptions import AirflowFailException

        from metaudit.pipeline import connections, stages

        api_key, host = connections.sendgrid_credentials()
        try:
            return stages.finish_run(
                connections.results_url(),
                get_current_context()["run_id"],
                extracted_ok=extracted is not None,
                api_key=api_key,
                host=host,
            )
        except stages.RunIncompleteError as exc:
            raise AirflowFailException(str(exc)) from exc

    extracted = extract(plan())
    # A task mapped straight from its decorator gets no doc_md from its docstring.
    audit.override(doc_md=audit.function.__doc__).expand(work=extracted) >> finish(extracted)


met_compliance_nightly()
