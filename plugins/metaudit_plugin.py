"""MET Audit in the Airflow UI: the audit packets pages and the compliance dashboard
(see metaudit.web.app).

Wiring only: the app lives in the metaudit package. The API server mounts it at
/metaudit; the UI gets navigation entries (packets, dashboard) and a tab on every DAG run (the page
explains when the run is not a MET Audit run: Airflow offers no per-DAG tabs).
"""

from __future__ import annotations

from airflow.plugins_manager import AirflowPlugin

from metaudit.web.app import PREFIX, create_app


class MetAuditPlugin(AirflowPlugin):
    name = "metaudit"
    # Airflow's plugin manager reads (and prunes) these class attributes as lists.
    fastapi_apps = [  # ruff: ignore[mutable-class-default]
        {"app": create_app(), "url_prefix": PREFIX, "name": "MET Audit packets"},
    ]
    external_views = [  # ruff: ignore[mutable-class-default]
        {
            "name": "Compliance dashboard",
            "href": f"{PREFIX}/dashboard",
            "destination": "nav",
            "category": "browse",
            "url_route": "metaudit-dashboard",
        },
        {
            "name": "Audit packets",
            "href": f"{PREFIX}/packets",
            "destination": "nav",
            "category": "browse",
            "url_route": "metaudit-packets",
        },
        {
            "name": "Audit packets",
            "href": f"{PREFIX}/packets?dag_id={{DAG_ID}}&run_id={{RUN_ID}}",
            "destination": "dag_run",
            "url_route": "metaudit-run-packets",
        },
    ]
