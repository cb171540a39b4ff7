"""The Celery configuration of MET Audit's workers: Airflow's settings, and a warm start."""

from __future__ import annotations

import subprocess
import sys

import pytest

pytest.importorskip("airflow.providers.celery")


def test_settings_are_airflows_defaults() -> None:
    from airflow.providers.celery.executors.default_celery import DEFAULT_CELERY_CONFIG

    from metaudit.pipeline.celery_config import CELERY_CONFIG

    assert CELERY_CONFIG == DEFAULT_CELERY_CONFIG
    assert CELERY_CONFIG is not DEFAULT_CELERY_CONFIG


def _run(code: str) -> list[str]:
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=300, check=True
    )
    # Airflow's logging writes to stdout too: the answer is the line marked for it.
    marked = [line for line in done.stdout.splitlines() if line.startswith("LOADED:")]
    assert len(marked) == 1, done.stdout + done.stderr
    return [name for name in marked[0].removeprefix("LOADED:").split(",") if name]


def test_importing_the_configuration_loads_nothing_heavy() -> None:
    # The scheduler imports it too, and never starts a worker.
    loaded = _run(
        "import sys, metaudit.pipeline.celery_config; "
        "print('LOADED:' + ','.join(m for m in ('great_expectations', 'matplotlib', 'reportlab') "
        "if m in sys.modules))"
    )
    assert loaded == []


def test_worker_start_preloads_the_audit_libraries() -> None:
    loaded = _run(
        "import sys; from celery.signals import worker_init; "
        "import metaudit.pipeline.celery_config as c; worker_init.send(sender=None); "
        "print('LOADED:' + ','.join(m for m in c.PRELOADED if m in sys.modules))"
    )
    from metaudit.pipeline.celery_config import PRELOADED

    assert loaded == list(PRELOADED)


def test_a_library_that_fails_to_import_does_not_stop_the_worker(
    caplog: pytest.LogCaptureFixture,
) -> None:
    from metaudit.pipeline.celery_config import preload

    took = preload(("json", "metaudit_no_such_module"))
    assert list(took) == ["json"]
    assert "could not preload metaudit_no_such_module" in caplog.text
