"""Celery configuration for MET Audit's workers: Airflow's own, plus a warm start.

Point ``[celery] celery_config_options`` (``AIRFLOW__CELERY__CELERY_CONFIG_OPTIONS``) at
``metaudit.pipeline.celery_config.CELERY_CONFIG``. The settings are Airflow's defaults,
unchanged. What it adds: when a Celery worker starts (``worker_init``, in the
worker's main process, before its pool forks), it imports the audit's heavy
libraries once. Airflow runs every task in a process forked from the worker, so
each task inherits them instead of importing them again: Great Expectations
alone takes about 3 s to import, paid by every practice's validation otherwise.
The scheduler imports this module too (it builds the same Celery app) but never
starts a worker, so it loads nothing more.
"""

from __future__ import annotations

import importlib
import logging
import time
from typing import Any

from airflow.providers.celery.executors.default_celery import DEFAULT_CELERY_CONFIG
from celery.signals import worker_init

log = logging.getLogger(__name__)

CELERY_CONFIG: dict[str, Any] = dict(DEFAULT_CELERY_CONFIG)

# What the practice stages import, heaviest first. Imports only: nothing here opens a
# connection, a file or a thread that a forked task could inherit half-used.
PRELOADED = (
    "great_expectations",
    "metaudit.check.engine",
    "metaudit.check.gx.runner",
    "metaudit.packets.build",
    "metaudit.packets.render",
    "reportlab.platypus",
    "metaudit.results",
    "metaudit.mail",
)


def preload(modules: tuple[str, ...] = PRELOADED) -> dict[str, float]:
    """Import ``modules``; returns the seconds each took. A module that fails to import
    is logged and left for the task that needs it to fail on, with its own message."""
    from metaudit.check.gx.runner import quiet_gx_logging

    quiet_gx_logging()  # GX logs hundreds of INFO lines on import
    took: dict[str, float] = {}
    for name in modules:
        began = time.perf_counter()
        try:
            importlib.import_module(name)
        except Exception as exc:  # a worker must start even when a library is broken
            log.warning("could not preload %s: %s", name, exc)
            continue
        took[name] = round(time.perf_counter() - began, 2)
    return took


@worker_init.connect
def _preload_on_worker_start(**_: Any) -> None:
    log.info("preloaded for the worker's task processes: %s", preload())
