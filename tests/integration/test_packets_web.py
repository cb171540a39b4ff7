"""The packets pages inside Airflow's own API app (FastAPI TestClient): routes and access rules.

The app is Airflow's real API server app with our plugin loaded from plugins/,
SimpleAuthManager users, and tokens issued by that auth manager; only Airflow's
REST API call of a rebuild is answered by a stand-in transport.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import httpx
import pytest
from builders import write_signed_packet
from servers import airflow_api_env

from metaudit.packets.layout import client_packet_path

pytestmark = [pytest.mark.airflow]

KEY = "a-deployment-secret-for-the-web-tests"
AS_OF = "2026-03-31"
CONFIG = """
access:
  admins: [dana]
practices:
  "PR-1":
    packet_viewers: [owner1]
  "PR-2":
    packet_viewers: [owner2]
"""
USERS = "owner1:viewer,owner2:viewer,nobody:viewer,dana:viewer,root:admin"


def _write_packet(
    packets: Path, practice_id: str, as_of: str, client_id: str | None, key: str = KEY
) -> Path:
    return write_signed_packet(packets, practice_id, as_of, client_id, key.encode())


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """Airflow's API app with the plugin, a packets folder, a configuration, a results store."""
    tmp = tmp_path_factory.mktemp("web")
    packets = tmp / "packets"
    for client in ("CL-1", "CL-2", "CL-3"):
        _write_packet(packets, "PR-1", AS_OF, client)
    _write_packet(packets, "PR-1", "2026-03-30", "CL-1")
    _write_packet(packets, "PR-1", AS_OF, None)
    _write_packet(packets, "PR-2", AS_OF, "CL-9")
    _write_packet(packets, "<b>odd</b>", AS_OF, "CL/../1")
    tampered = _write_packet(packets, "PR-1", AS_OF, "CL-4", key="somebody-elses-key-0123456789")
    # Not packets: a stray file, a folder that is no id we would write, a bad date folder.
    (packets / "README.txt").write_text("not a packet")
    (packets / "PR-1" / "notes.txt").write_text("not a packet")
    (packets / "PR-1" / "2026-02-30").mkdir()
    (packets / "PR%2").mkdir()
    env = airflow_api_env(
        tmp, users=USERS, jwt_secret="jwt-secret-of-the-web-tests-" + "x" * 40, packet_key=KEY
    )
    Path(env["METAUDIT_CONFIG"]).write_text(CONFIG)
    Path(env["AIRFLOW_HOME"]).mkdir()
    database = env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"]
    migrate = subprocess.run(
        [str(Path(sys.executable).parent / "airflow"), "db", "migrate"],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert migrate.returncode == 0, migrate.stdout[-2000:] + migrate.stderr[-2000:]

    with pytest.MonkeyPatch.context() as patch:
        for name, value in env.items():
            patch.setenv(name, value)
        from airflow import settings

        # Airflow may already be imported in this worker with another database: point
        # its ORM at this test's database, and back afterwards.
        old = settings.SQL_ALCHEMY_CONN, settings.SQL_ALCHEMY_CONN_ASYNC
        settings.SQL_ALCHEMY_CONN = database
        settings.SQL_ALCHEMY_CONN_ASYNC = database.replace("sqlite://", "sqlite+aiosqlite://", 1)
        settings.reconfigure_orm()
        # Likewise its plugins: another test of this worker may have loaded them (cached)
        # from another folder, and the app would then have no /metaudit mount.
        from airflow import plugins_manager

        old_plugins = settings.PLUGINS_FOLDER
        settings.PLUGINS_FOLDER = env["AIRFLOW__CORE__PLUGINS_FOLDER"]
        plugins_manager._get_plugins.cache_clear()
        plugins_manager.get_fastapi_plugins.cache_clear()
        try:
            from airflow.api_fastapi.app import create_app, get_auth_manager
            from airflow.api_fastapi.auth.managers.simple.user import SimpleAuthManagerUser
            from fastapi.testclient import TestClient

            app = create_app(apps="core")
            plugin_app = next(
                route.app for route in app.routes if getattr(route, "path", None) == "/metaudit"
            )
            manager = get_auth_manager()

            def token(name: str) -> str:
                role = dict(u.split(":") for u in USERS.split(","))[name]
                return manager.generate_jwt(SimpleAuthManagerUser(username=name, role=role))

            with TestClient(app, base_url="http://airflow.test") as client:
                yield {
                    "client": client,
                    "token": token,
                    "packets": packets,
                    "tampered": tampered,
                    "plugin_app": plugin_app,
                }
        finally:
            settings.SQL_ALCHEMY_CONN, settings.SQL_ALCHEMY_CONN_ASYNC = old
            settings.reconfigure_orm()
            settings.PLUGINS_FOLDER = old_plugins
            plugins_manager._get_plugins.cache_clear()
            plugins_manager.get_fastapi_plugins.cache_clear()


def _as(site: dict[str, Any], user: str | None, **headers: str) -> dict[str, str]:
    if user is not None:
        headers["Authorization"] = f"Bearer {site['token'](user)}"
    return headers


def _get(site: dict[str, Any], path: str, user: str | None = None, **params: Any) -> httpx.Response:
    response: httpx.Response = site["client"].get(
        path, params=params, headers=_as(site, user), follow_redirects=False
    )
    return response


def _download(site: dict[str, Any], user: str, practice_id: str, client_id: str) -> httpx.Response:
    """Ask, as ``user``, for the client packet of AS_OF."""
    return _get(
        site,
        "/metaudit/packets/download",
        user,
        practice_id=practice_id,
        as_of=AS_OF,
        client_id=client_id,
    )


def _listed(site: dict[str, Any], user: str, **params: Any) -> list[dict[str, Any]]:
    response = _get(site, "/metaudit/api/packets", user, **params)
    assert response.status_code == 200, response.text
    packets: list[dict[str, Any]] = response.json()["packets"]
    return packets


def _context(site: dict[str, Any]) -> Any:
    return site["plugin_app"].state.metaudit.get()


# ------------------------------------------------------------------------ authentication


@pytest.mark.parametrize(
    "path",
    [
        "/metaudit/packets",
        "/metaudit/api/packets",
        "/metaudit/downloads",
        "/metaudit/dashboard",
        "/metaudit/static/metaudit.css",
        f"/metaudit/packets/download?practice_id=PR-1&as_of={AS_OF}&client_id=CL-1",
    ],
)
def test_anonymous_requests_get_401(site, path):
    response = site["client"].get(path, follow_redirects=False)
    assert response.status_code == 401
    assert response.headers["content-security-policy"].startswith("default-src 'none'")


def test_an_anonymous_browser_is_sent_to_airflows_login_and_back(site):
    response = site["client"].get(
        "/metaudit/packets?practice_id=PR-1",
        headers={"Accept": "text/html,application/xhtml+xml"},
        follow_redirects=False,
    )
    assert response.status_code == 303
    assert response.headers["location"] == (
        "/auth/login?next=%2Fmetaudit%2Fpackets%3Fpractice_id%3DPR-1"
    )


def test_a_forged_token_is_refused(site):
    forged = site["token"]("root")[:-4] + "AAAA"
    response = site["client"].get(
        "/metaudit/api/packets", headers={"Authorization": f"Bearer {forged}"}
    )
    assert response.status_code in (401, 403)


def test_a_rebuild_post_without_a_user_is_refused(site):
    response = site["client"].post(
        "/metaudit/packets/rebuild",
        data={"practice_id": "PR-1", "as_of": AS_OF},
        headers={"Origin": "http://airflow.test"},
    )
    assert response.status_code == 401


# ------------------------------------------------------------------------------ listing


def test_an_owner_sees_only_the_practices_granted_to_them(site):
    listed = _listed(site, "owner1")
    assert {p["practice_id"] for p in listed} == {"PR-1"}
    clients = sorted(p["client_id"] for p in listed if p["kind"] == "client")
    assert clients == ["CL-1", "CL-1", "CL-2", "CL-3", "CL-4"]
    assert [p["kind"] for p in listed].count("practice") == 1
    assert {p["practice_id"] for p in _listed(site, "owner2")} == {"PR-2"}


def test_newest_as_of_date_first_and_the_practice_packet_before_its_clients(site):
    listed = _listed(site, "owner1")
    assert [(p["as_of"] or p["month"], p["client_id"]) for p in listed] == [
        ("2026-03-31", "CL-1"),
        ("2026-03-31", "CL-2"),
        ("2026-03-31", "CL-3"),
        ("2026-03-31", "CL-4"),
        ("2026-03-30", "CL-1"),
        ("2026-03", None),
    ]


def test_each_packet_says_whether_it_verifies(site):
    listed = {(p["as_of"], p["client_id"]): p for p in _listed(site, "owner1")}
    assert listed[AS_OF, "CL-1"]["verifies"] is True
    assert listed[AS_OF, "CL-1"]["verification"].startswith("verified")
    bad = listed[AS_OF, "CL-4"]
    assert bad["verifies"] is False
    assert "signature" in bad["verification"]
    assert all(p["size"] > 0 and p["modified"] for p in listed.values())


def test_admins_by_role_and_by_name_see_every_practice(site):
    for admin in ("root", "dana"):
        practices = {p["practice_id"] for p in _listed(site, admin)}
        assert practices == {"PR-1", "PR-2", "<b>odd</b>"}


def test_a_user_granted_nothing_sees_nothing_and_is_told_why(site):
    assert _listed(site, "nobody") == []
    page = _get(site, "/metaudit/packets", "nobody")
    assert page.status_code == 200
    assert "not granted any practice" in page.text


def test_filters_practice_client_as_of_and_kind(site):
    assert {p["client_id"] for p in _listed(site, "root", client_id="CL-1")} == {"CL-1"}
    assert len(_listed(site, "root", client_id="CL-1")) == 2
    on_day = _listed(site, "root", as_of="2026-03-30")
    # The date's client packets, and the practice packets of its month (month to date).
    assert {(p["kind"], p["as_of"] or p["month"]) for p in on_day} == {
        ("client", "2026-03-30"),
        ("practice", "2026-03"),
    }
    assert {p["as_of"] for p in _listed(site, "root", as_of="2026-03-30", kind="client")} == {
        "2026-03-30"
    }
    assert {p["kind"] for p in _listed(site, "root", kind="practice")} == {"practice"}
    assert {p["practice_id"] for p in _listed(site, "root", practice_id="PR-2")} == {"PR-2"}


def test_paging(site):
    packets = site["packets"]
    for n in range(60):
        _write_packet(packets, "PR-2", "2026-03-29", f"CL-{100 + n}")
    first = _get(site, "/metaudit/api/packets", "owner2", as_of="2026-03-29").json()
    second = _get(site, "/metaudit/api/packets", "owner2", as_of="2026-03-29", page=2).json()
    assert (first["total"], first["pages"], len(first["packets"])) == (60, 2, 50)
    assert len(second["packets"]) == 10
    assert not {p["client_id"] for p in first["packets"]} & {
        p["client_id"] for p in second["packets"]
    }
    page = _get(site, "/metaudit/packets", "owner2", as_of="2026-03-29")
    assert 'rel="next"' in page.text and "page=2" in page.text
    assert _get(site, "/metaudit/api/packets", "owner2", page=0).status_code == 422


def test_the_page_lists_rows_with_download_links_and_escapes_ids(site):
    page = _get(site, "/metaudit/packets", "root")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert '<table id="packets">' in page.text
    assert 'class="download" href="/metaudit/packets/download?practice_id=PR-1' in page.text
    # An id is data, never markup.
    assert "<b>odd</b>" not in page.text
    assert "&lt;b&gt;odd&lt;/b&gt;" in page.text
    assert page.text.count('<form class="rebuild"') >= 5
    owner = _get(site, "/metaudit/packets", "owner1")
    assert '<form class="rebuild"' not in owner.text
    assert "/metaudit/downloads" not in owner.text


def test_security_headers(site):
    page = _get(site, "/metaudit/packets", "owner1")
    csp = page.headers["content-security-policy"]
    assert "default-src 'none'" in csp and "frame-ancestors 'self'" in csp
    assert "script-src" not in csp  # no script may run at all
    assert page.headers["x-content-type-options"] == "nosniff"
    assert page.headers["cache-control"] == "no-store"
    css = _get(site, "/metaudit/static/metaudit.css", "owner1")
    assert css.status_code == 200 and css.headers["content-type"].startswith("text/css")


# ------------------------------------------------------------------------ access rules


def test_another_practices_listing_is_refused(site):
    assert _get(site, "/metaudit/packets", "owner1", practice_id="PR-2").status_code == 403
    assert _get(site, "/metaudit/api/packets", "owner1", practice_id="PR-2").status_code == 403


def test_another_practices_packet_is_refused_whether_it_exists_or_not(site):
    for client in ("CL-9", "CL-NOPE"):
        response = _download(site, "owner1", "PR-2", client)
        assert response.status_code == 403
    month = _get(site, "/metaudit/packets/download", "owner1", practice_id="PR-2", month="2026-03")
    assert month.status_code == 403


@pytest.mark.parametrize(
    "params",
    [
        {"practice_id": "PR-1", "as_of": "2026-13-01", "client_id": "CL-1"},
        {"practice_id": "PR-1", "as_of": "20260331", "client_id": "CL-1"},
        {"practice_id": "PR-1", "as_of": AS_OF, "client_id": "CL\n1"},
        {"practice_id": "PR-1", "as_of": AS_OF, "client_id": "C" * 65},
        {"practice_id": "PR-1", "as_of": AS_OF},
        {"practice_id": "PR-1", "month": "2026-3"},
        {"practice_id": "PR-1", "month": "2026-03", "client_id": "CL-1"},
    ],
)
def test_malformed_requests_are_rejected(site, params):
    assert _get(site, "/metaudit/packets/download", "root", **params).status_code == 422


@pytest.mark.parametrize(
    "params",
    [
        {"practice_id": "../PR-2", "as_of": AS_OF, "client_id": "CL-9"},
        {"practice_id": "PR-1", "as_of": AS_OF, "client_id": "../../PR-2/2026-03-31/CL-9"},
        {"practice_id": "..", "as_of": AS_OF, "client_id": "README.txt"},
        {"practice_id": "PR-1", "as_of": AS_OF, "client_id": "CL-NOPE"},
    ],
)
def test_no_path_leaves_the_packets_folder(site, params):
    # Ids are encoded into file names, so a traversal names a packet that does not exist.
    assert _get(site, "/metaudit/packets/download", "root", **params).status_code == 404


def test_a_symlink_planted_in_the_folder_is_not_served(site, tmp_path):
    secret = tmp_path / "secret.zip"
    secret.write_bytes(b"not for download")
    link = client_packet_path(site["packets"], "PR-1", AS_OF, "CL-LINK")
    link.symlink_to(secret)
    try:
        response = _download(site, "root", "PR-1", "CL-LINK")
        assert response.status_code == 404
        assert "CL-LINK" not in {p["client_id"] for p in _listed(site, "root")}
    finally:
        link.unlink()


# ------------------------------------------------------------------------ downloads


def test_a_download_streams_the_zip_and_is_recorded(site):
    path = client_packet_path(site["packets"], "PR-1", AS_OF, "CL-2")
    response = _download(site, "owner1", "PR-1", "CL-2")
    assert response.status_code == 200
    assert response.content == path.read_bytes()
    assert response.headers["content-type"] == "application/zip"
    assert response.headers["content-disposition"] == (
        'attachment; filename="metaudit-PR-1-2026-03-31-CL-2.zip"'
    )
    sha256 = hashlib.sha256(path.read_bytes()).hexdigest()
    assert response.headers["x-metaudit-sha256"] == sha256
    rows, _ = _context(site).store.downloads(practice_id="PR-1")
    row = next(r for r in rows if r["client_id"] == "CL-2")
    assert (row["user_name"], row["kind"], row["period"], row["sha256"], row["verified"]) == (
        "owner1",
        "client",
        AS_OF,
        sha256,
        True,
    )
    assert row["packet"] == "PR-1/2026-03-31/CL-2.zip"
    assert row["size"] == path.stat().st_size


def test_a_practice_packet_download(site):
    response = _get(
        site, "/metaudit/packets/download", "owner1", practice_id="PR-1", month="2026-03"
    )
    assert response.status_code == 200
    rows, _ = _context(site).store.downloads(practice_id="PR-1")
    assert rows[0]["kind"] == "practice" and rows[0]["period"] == "2026-03"


def test_a_packet_that_does_not_verify_is_served_but_marked(site):
    response = _download(site, "owner1", "PR-1", "CL-4")
    assert response.status_code == 200
    assert response.headers["x-metaudit-verified"] == "false"
    rows, _ = _context(site).store.downloads(practice_id="PR-1")
    assert rows[0]["client_id"] == "CL-4" and rows[0]["verified"] is False


def test_no_trail_no_download(site, monkeypatch):
    store = _context(site).store

    def broken(**_: Any) -> int:
        raise RuntimeError("results store is down")

    monkeypatch.setattr(store, "record_download", broken)
    response = _download(site, "owner1", "PR-1", "CL-1")
    assert response.status_code == 503
    assert b"PK" not in response.content
    assert "could not be recorded" in response.json()["detail"]


def test_the_trail_page_is_for_admins(site):
    _download(site, "owner2", "PR-2", "CL-9")
    assert _get(site, "/metaudit/downloads", "owner2").status_code == 403
    page = _get(site, "/metaudit/downloads", "dana")
    assert page.status_code == 200
    assert '<table id="downloads">' in page.text
    assert '<td class="user">owner2</td>' in page.text
    sha256 = hashlib.sha256(
        client_packet_path(site["packets"], "PR-2", AS_OF, "CL-9").read_bytes()
    ).hexdigest()
    assert sha256 in page.text
    filtered = _get(site, "/metaudit/downloads", "dana", practice_id="PR-1")
    assert '<td class="user">owner2</td>' not in filtered.text


# ------------------------------------------------------------------------------ rebuild


@pytest.fixture
def airflow_api(site):
    """Stands in for Airflow's REST API: records what the plugin asked, answers as told."""
    calls: list[httpx.Request] = []
    answer: dict[str, Any] = {"status": 200, "body": {"dag_run_id": "manual__2026-11-24T00:00"}}

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        return httpx.Response(answer["status"], json=answer["body"])

    context = _context(site)
    before = context.airflow_transport, context.airflow_api_url
    context.airflow_transport = httpx.MockTransport(handler)
    context.airflow_api_url = "http://airflow.internal:8080"
    yield calls, answer
    context.airflow_transport, context.airflow_api_url = before


def _rebuild(site: dict[str, Any], user: str, **headers: str) -> httpx.Response:
    response: httpx.Response = site["client"].post(
        "/metaudit/packets/rebuild",
        data={"practice_id": "PR-1", "as_of": AS_OF, "client_id": "CL-2"},
        headers=_as(site, user, **headers),
        follow_redirects=False,
    )
    return response


def test_an_admin_rebuild_triggers_the_dag_as_that_user_and_is_recorded(site, airflow_api):
    calls, _ = airflow_api
    response = _rebuild(site, "dana", Origin="http://airflow.test")
    assert response.status_code == 303
    assert response.headers["location"].startswith("/metaudit/packets?practice_id=PR-1")
    [call] = calls
    assert call.method == "POST"
    assert str(call.url) == (
        "http://airflow.internal:8080/api/v2/dags/met_compliance_nightly/dagRuns"
    )
    assert call.headers["authorization"] == response.request.headers["authorization"]
    body = json.loads(call.content)
    assert body["conf"] == {"as_of": AS_OF, "practice_ids": ["PR-1"], "rebuild_packets": True}
    assert "dana" in body["note"] and "CL-2" in body["note"]
    rows, _ = _context(site).store.rebuilds()
    assert (rows[0]["user_name"], rows[0]["status"], rows[0]["dag_run_id"]) == (
        "dana",
        "triggered",
        "manual__2026-11-24T00:00",
    )
    page = _get(site, "/metaudit/downloads", "dana")
    assert "manual__2026-11-24T00:00" in page.text


def test_a_rebuild_airflow_refuses_is_recorded_as_failed(site, airflow_api):
    _, answer = airflow_api
    answer.update(status=403, body={"detail": "Forbidden"})
    response = _rebuild(site, "root", Origin="http://airflow.test")
    assert response.status_code == 303
    assert "rebuild-failed" in response.headers["location"]
    rows, _ = _context(site).store.rebuilds()
    assert rows[0]["status"] == "failed" and "403" in rows[0]["error"]
    page = site["client"].get(response.headers["location"], headers=_as(site, "root"))
    assert "could not be triggered" in page.text


def test_owners_and_cross_site_posts_cannot_rebuild(site, airflow_api):
    calls, _ = airflow_api
    before = _context(site).store.rebuilds()[1]
    assert _rebuild(site, "owner1", Origin="http://airflow.test").status_code == 403
    assert _rebuild(site, "dana", Origin="https://evil.example").status_code == 403
    assert calls == []
    assert _context(site).store.rebuilds()[1] == before


# --------------------------------------------------------------------- DAG-run link


def test_the_dag_run_tab_shows_that_runs_packets(site):
    store = _context(site).store
    store.start_run(
        "scheduled__2026-03-30", "met_compliance_nightly", date(2026, 3, 30), [], {"PR-1": "One"}
    )
    page = _get(
        site,
        "/metaudit/packets",
        "owner1",
        dag_id="met_compliance_nightly",
        run_id="scheduled__2026-03-30",
    )
    assert page.status_code == 200
    assert "as of 2026-03-30" in page.text
    assert 'data-as-of="2026-03-30"' in page.text
    assert 'data-as-of="2026-03-31"' not in page.text
    other = _get(site, "/metaudit/packets", "owner1", dag_id="some_other_dag", run_id="r1")
    assert "not a MET Audit DAG" in other.text and 'class="packet"' not in other.text


def test_airflow_lists_the_plugin_with_its_nav_entry_and_run_tab(site):
    response = _get(site, "/api/v2/plugins", "root")
    assert response.status_code == 200
    [plugin] = [p for p in response.json()["plugins"] if p["name"] == "metaudit"]
    views = {v["url_route"]: v for v in plugin["external_views"]}
    assert views["metaudit-packets"]["href"] == "/metaudit/packets"
    assert views["metaudit-dashboard"]["href"] == "/metaudit/dashboard"
    assert {v["destination"] for v in views.values()} == {"nav", "dag_run"}
    assert "{RUN_ID}" in views["metaudit-run-packets"]["href"]
    assert [a["url_prefix"] for a in plugin["fastapi_apps"]] == ["/metaudit"]


# ------------------------------------------------------- issue 12: tamper evidence, CSRF


def test_a_packet_copied_over_another_practices_packet_is_not_verified(site):
    packets = site["packets"]
    theirs = _write_packet(packets, "PR-2", AS_OF, "CL-8")
    planted = client_packet_path(packets, "PR-1", AS_OF, "CL-5")
    planted.write_bytes(theirs.read_bytes())
    try:
        row = {r["client_id"]: r for r in _listed(site, "owner1", as_of=AS_OF)}["CL-5"]
        assert row["verifies"] is False and "belongs elsewhere" in row["verification"]
        response = _download(site, "owner1", "PR-1", "CL-5")
        assert response.status_code == 200
        assert response.headers["x-metaudit-verified"] == "false"
        # The page and `metaudit verify` agree.
        env = {**os.environ, "METAUDIT_PACKET_KEY": KEY}
        verify = subprocess.run(
            [str(Path(sys.executable).parent / "metaudit"), "verify", str(planted)],
            env=env,
            capture_output=True,
            text=True,
        )
        assert verify.returncode == 1 and "belongs elsewhere" in verify.stderr
    finally:
        planted.unlink()
        theirs.unlink()


def _cookie_post(site: dict[str, Any], user: str, **headers: str) -> httpx.Response:
    """A rebuild form post that the UI's cookie authenticates (as a browser sends it)."""
    client = site["client"]
    client.cookies.set("_token", site["token"](user))
    try:
        response: httpx.Response = client.post(
            "/metaudit/packets/rebuild",
            data={"practice_id": "PR-1", "as_of": AS_OF},
            headers=headers,
            follow_redirects=False,
        )
    finally:
        client.cookies.clear()
    return response


@pytest.mark.parametrize("authorization", ["Basic Zm9vOmJhcg==", "Bearer ", "Bearer"])
def test_a_cookie_rebuild_with_a_stray_authorization_header_needs_the_same_origin(
    site, airflow_api, authorization
):
    calls, _ = airflow_api
    response = _cookie_post(site, "dana", Authorization=authorization)
    assert response.status_code == 403, response.text
    assert calls == []
    # From the page itself, the cookie's rebuild goes through, with the cookie's token.
    response = _cookie_post(site, "dana", Authorization=authorization, Origin="http://airflow.test")
    assert response.status_code == 303
    assert calls[0].headers["authorization"].startswith("Bearer ey")


@pytest.mark.parametrize(
    "headers",
    [
        {"Sec-Fetch-Site": "cross-site"},
        {"Sec-Fetch-Site": "same-site"},
        {"Origin": "https://evil.example"},
    ],
)
def test_cross_site_downloads_and_rebuilds_are_refused(site, airflow_api, headers):
    calls, _ = airflow_api
    store = _context(site).store
    before = store.downloads()[1]
    response = site["client"].get(
        "/metaudit/packets/download",
        params={"practice_id": "PR-1", "as_of": AS_OF, "client_id": "CL-1"},
        headers=_as(site, "owner1", **headers),
    )
    assert response.status_code == 403 and "another" in response.text
    assert store.downloads()[1] == before
    assert _rebuild(site, "dana", **headers).status_code == 403
    assert calls == []
    # Same origin, or a link opened directly, still downloads.
    for fine in ({"Sec-Fetch-Site": "same-origin"}, {"Sec-Fetch-Site": "none"}, {}):
        ok = site["client"].get(
            "/metaudit/packets/download",
            params={"practice_id": "PR-1", "as_of": AS_OF, "client_id": "CL-1"},
            headers=_as(site, "owner1", **fine),
        )
        assert ok.status_code == 200


def test_a_rebuild_never_sends_the_token_to_the_requests_host(site, airflow_api):
    calls, _ = airflow_api
    context = _context(site)
    context.airflow_api_url = None  # neither METAUDIT_AIRFLOW_API_URL nor [api] base_url
    response = _rebuild(site, "dana", Host="127.0.0.1:9", Origin="http://127.0.0.1:9")
    assert response.status_code == 303 and "rebuild-failed" in response.headers["location"]
    assert calls == []
    rows, _ = context.store.rebuilds()
    assert rows[0]["status"] == "failed"
    assert "no Airflow API address is configured" in rows[0]["error"]


def test_a_planted_zip_bomb_costs_the_listing_no_memory(site):
    import tracemalloc
    import zipfile

    planted = client_packet_path(site["packets"], "PR-1", AS_OF, "CL-6")
    with zipfile.ZipFile(planted, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        listed = {"path": "cover.pdf", "size": 64 * 1024 * 1024, "sha256": "00"}
        archive.writestr("manifest.json", json.dumps({"signature": "00", "files": [listed]}))
        with archive.open("cover.pdf", "w", force_zip64=True) as member:
            for _ in range(64):
                member.write(bytes(1024 * 1024))
    tracemalloc.start()
    try:
        rows = {r["client_id"]: r for r in _listed(site, "owner1", as_of=AS_OF)}
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
        planted.unlink()
    assert rows["CL-6"]["verifies"] is False
    assert "signature does not match" in rows["CL-6"]["verification"]
    assert peak < 16 * 1024 * 1024, f"the listing peaked at {peak} bytes"


def test_a_download_judges_the_bytes_it_serves(site):
    # The listing verified the genuine file; the packet of another date swapped in with
    # the same size and time keeps the listing's cached verdict, not the download's.
    packets = site["packets"]
    genuine = _write_packet(packets, "PR-1", AS_OF, "CL-7")
    size = genuine.stat().st_size
    for day in range(1, 29):  # a date whose packet compresses to the very same size
        other = _write_packet(packets, "PR-1", f"2026-02-{day:02d}", "CL-7")
        if other.stat().st_size == size:
            break
        other.unlink()
    try:
        listed = {r["client_id"]: r for r in _listed(site, "owner1", as_of=AS_OF)}
        assert listed["CL-7"]["verifies"] is True
        stat = genuine.stat()
        data = other.read_bytes()
        assert len(data) == stat.st_size
        genuine.write_bytes(data)
        os.utime(genuine, ns=(stat.st_atime_ns, stat.st_mtime_ns))
        response = _download(site, "owner1", "PR-1", "CL-7")
        assert response.content == data
        assert response.headers["x-metaudit-verified"] == "false"
    finally:
        genuine.unlink()
        other.unlink()
        for folder in (packets / "PR-1").glob("2026-02-*"):
            folder.rmdir()


def test_the_pages_refuse_the_demo_key_outside_the_demo(site, monkeypatch):
    from metaudit.packets.signing import DEMO_PACKET_KEY
    from metaudit.web.context import load_context

    monkeypatch.setenv("METAUDIT_PACKET_KEY", DEMO_PACKET_KEY.decode())
    monkeypatch.delenv("METAUDIT_DEMO", raising=False)
    loaded = load_context()
    try:
        assert loaded.packet_key is None
        assert "published demo key" in (loaded.packet_key_problem or "")
    finally:
        loaded.store.close()
    monkeypatch.setenv("METAUDIT_DEMO", "1")
    demo = load_context()
    try:
        assert demo.packet_key == DEMO_PACKET_KEY
    finally:
        demo.store.close()


def test_a_packet_in_force_on_a_later_date_is_listed_verified_and_served_there(site):
    # An unchanged client: the packet built on 03-20 is the same file on 03-21, and the
    # signed index of 03-21 names it (as the nightly run leaves it).
    from metaudit.packets.inforce import write_in_force

    packets = site["packets"]
    built = _write_packet(packets, "PR-2", "2026-03-20", "CL-50")
    later = client_packet_path(packets, "PR-2", "2026-03-21", "CL-50")
    later.parent.mkdir(parents=True)
    os.link(built, later)
    manifest = json.loads(zipfile.ZipFile(built).read("manifest.json"))
    entry = {
        "built_as_of": "2026-03-20",
        "records_unchanged_since": "2026-03-18",
        "manifest_signature": manifest["signature"],
        "sha256": hashlib.sha256(built.read_bytes()).hexdigest(),
        "size": built.stat().st_size,
    }
    write_in_force(packets, "PR-2", "2026-03-21", {"CL-50": entry}, key=KEY.encode())
    # The same file copied by hand to a date whose index does not name it.
    stray = client_packet_path(packets, "PR-2", "2026-03-22", "CL-50")
    stray.parent.mkdir(parents=True)
    os.link(built, stray)

    [row] = _listed(site, "owner2", as_of="2026-03-21")
    assert (row["as_of"], row["built_as_of"], row["records_unchanged_since"]) == (
        "2026-03-21",
        "2026-03-20",
        "2026-03-18",
    )
    assert row["verifies"] is True, row["verification"]
    assert "in force on 2026-03-21" in row["verification"]
    page = _get(site, "/metaudit/packets", "owner2", as_of="2026-03-21")
    assert "in force since 2026-03-20; records unchanged since 2026-03-18" in page.text
    response = _get(
        site,
        "/metaudit/packets/download",
        "owner2",
        practice_id="PR-2",
        as_of="2026-03-21",
        client_id="CL-50",
    )
    assert response.status_code == 200 and response.content == built.read_bytes()
    assert response.headers["x-metaudit-verified"] == "true"
    assert response.headers["x-metaudit-built-as-of"] == "2026-03-20"
    [row] = _listed(site, "owner2", as_of="2026-03-22")
    assert row["verifies"] is False and "not in force there" in row["verification"]


# ------------------------------------------------ issue 17: the dashboard, accepted findings


def test_the_dashboard_and_an_acceptance_through_airflows_own_authentication(site):
    from datetime import timedelta

    from metaudit.spec.findings import Finding

    store = _context(site).store
    day = date.fromisoformat(AS_OF)
    found = Finding(
        as_of=AS_OF,
        practice_id="PR-1",
        rule_id="REF-001",
        severity="critical",
        entity_type="client",
        entity_id="CL-1",
        client_id="CL-1",
        message="Client CL-1 has no referral.",
    )
    store.start_run("r-dash", "met_compliance_nightly", day, [], ["PR-1"], {"PR-1": "Brookline"})
    store.persist_practice("r-dash", day, "PR-1", [found])
    page = _get(site, "/metaudit/dashboard", "owner1", practice_id="PR-1")
    assert page.status_code == 200 and 'id="open-total" data-count="1"' in page.text
    assert _get(site, "/metaudit/dashboard", "owner2", practice_id="PR-1").status_code == 403
    form = {
        "practice_id": "PR-1",
        "fingerprint": found.fingerprint,
        "reason": "payer exception",
        "until": (date.today() + timedelta(days=30)).isoformat(),
    }
    client = site["client"]
    # Anonymous: 401; the UI's cookie without Origin or Referer: refused as a cross-site post.
    assert client.post("/metaudit/findings/accept", data=form).status_code == 401
    client.cookies.set("_token", site["token"]("owner1"))
    try:
        refused = client.post("/metaudit/findings/accept", data=form, follow_redirects=False)
        assert refused.status_code == 403
        accepted = client.post(
            "/metaudit/findings/accept",
            data=form,
            headers={"Origin": "http://airflow.test"},
            follow_redirects=False,
        )
        assert accepted.status_code == 303, accepted.text
    finally:
        client.cookies.clear()
    (event,) = store.acceptance_trail("PR-1", found.fingerprint)
    assert event.user_name == "owner1"
    page = _get(site, "/metaudit/dashboard", "owner1", practice_id="PR-1")
    assert 'id="open-total" data-count="0"' in page.text
    assert 'id="accepted-count" data-count="1"' in page.text


# ---------------------------------------------------------------------- records requests


@pytest.fixture
def request_source(site, tmp_path):
    """The builders' clean practice PR-1 (client CL-1, claims CLM-1..4) as the source the
    records requests read, with an empty results folder (the check runs on the request)."""
    from builders import clean_records, write_sqlite

    context = _context(site)
    before = context.source_url, context.results_root
    context.source_url = str(write_sqlite(clean_records(), tmp_path / "source.sqlite"))
    context.results_root = tmp_path / "results"
    yield context
    context.source_url, context.results_root = before


def _ask(site: dict[str, Any], user: str, origin: str = "http://airflow.test", **form: str):
    fields = {"practice_id": "PR-1", "reference": "Payer X audit 123", "as_of": AS_OF, **form}
    response: httpx.Response = site["client"].post(
        "/metaudit/packets/request",
        data=fields,
        headers=_as(site, user, Origin=origin),
        follow_redirects=False,
    )
    return response


def test_an_owner_gets_the_answer_to_a_request_and_the_trail_names_them_and_the_reference(
    site, request_source
):
    response = _ask(site, "owner1", claims="CLM-1, CLM-2\nCLM-3")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/zip"
    rid = response.headers["x-metaudit-request-id"]
    assert response.headers["content-disposition"] == (
        f'attachment; filename="metaudit-PR-1-request-{rid}.zip"'
    )
    assert response.headers["x-metaudit-verified"] == "true"
    sha256 = hashlib.sha256(response.content).hexdigest()
    assert response.headers["x-metaudit-sha256"] == sha256
    stored = site["packets"] / "PR-1" / "requests" / f"{rid}.zip"
    assert stored.read_bytes() == response.content
    with zipfile.ZipFile(stored) as packet:
        manifest = json.loads(packet.read("manifest.json"))
    assert manifest["kind"] == "request" and manifest["client_id"] == "CL-1"
    assert manifest["request"]["claims"] == ["CLM-1", "CLM-2", "CLM-3"]
    rows, _ = request_source.store.downloads(practice_id="PR-1")
    row = rows[0]
    assert (row["user_name"], row["kind"], row["client_id"], row["reference"]) == (
        "owner1",
        "request",
        "CL-1",
        "Payer X audit 123",
    )
    assert (row["sha256"], row["verified"], row["packet"]) == (
        sha256,
        True,
        f"PR-1/requests/{rid}.zip",
    )
    trail = _get(site, "/metaudit/downloads", "dana", practice_id="PR-1")
    assert '<td class="reference">Payer X audit 123</td>' in trail.text


def test_a_request_by_client_and_range_of_service_dates(site, request_source):
    response = _ask(
        site, "root", client_id="CL-1", service_from="2026-03-01", service_to="2026-03-31"
    )
    assert response.status_code == 200, response.text
    with zipfile.ZipFile(io.BytesIO(response.content)) as packet:
        manifest = json.loads(packet.read("manifest.json"))
    asked = manifest["request"]
    assert (asked["claims"], asked["service_from"], asked["service_to"]) == (
        [],
        "2026-03-01",
        "2026-03-31",
    )
    # The range holds CLM-3's and CLM-4's lines, and the session of 2026-03-12 and 2026-03-30.
    assert sorted({s["claim_id"] for s in asked["services"]}) == ["CLM-3", "CLM-4"]


def test_the_packets_page_has_the_request_form_for_granted_users_only(site):
    owner = _get(site, "/metaudit/packets", "owner1")
    assert '<form id="records-request"' in owner.text
    assert '<option value="PR-1"' in owner.text.split('id="records-request"')[1]
    assert '<option value="PR-2"' not in owner.text.split('id="records-request"')[1]
    nobody = _get(site, "/metaudit/packets", "nobody")
    assert '<form id="records-request"' not in nobody.text


@pytest.mark.parametrize("practice", ["PR-2", "PR-404"])
def test_a_request_of_another_practice_is_refused_before_anything_is_looked_up(
    site, request_source, practice
):
    before = request_source.store.downloads()[1]
    response = _ask(site, "owner1", practice_id=practice, claims="CLM-1")
    assert response.status_code == 403
    assert request_source.store.downloads()[1] == before


@pytest.mark.parametrize(
    ("form", "status", "words"),
    [
        ({"claims": "CLM-1,NOPE"}, 422, "NOPE"),
        ({"claims": "CLM-1", "reference": ""}, 422, "reference is required"),
        ({"claims": "CLM-1", "reference": "x" * 201}, 422, "at most 200"),
        ({"claims": "CLM-1", "reference": "two\nlines"}, 422, "printable"),
        ({"claims": "CLM-1", "client_id": "CL-1"}, 422, "not both"),
        (
            {"client_id": "CL-1", "service_from": "2026-03-20", "service_to": "2026-03-01"},
            422,
            "empty",
        ),
        (
            {"client_id": "CL-1", "service_from": "2025-01-01", "service_to": "2025-01-31"},
            422,
            "no services",
        ),
        (
            {"client_id": "CL-9", "service_from": "2026-03-01", "service_to": "2026-03-31"},
            422,
            "CL-9",
        ),
        ({}, 422, "claims, or a client"),
        ({"claims": "CLM-1", "as_of": "2026-02-30"}, 422, "as_of"),
    ],
)
def test_a_request_that_cannot_be_answered_says_what_is_wrong(
    site, request_source, form, status, words
):
    before = request_source.store.downloads()[1]
    response = _ask(site, "owner1", **form)
    assert response.status_code == status, response.text
    assert words in response.json()["detail"]
    assert request_source.store.downloads()[1] == before


def test_a_cross_site_request_post_is_refused(site, request_source):
    response = _ask(site, "owner1", origin="https://evil.example", claims="CLM-1")
    assert response.status_code == 403


def test_no_trail_no_request_packet(site, request_source, monkeypatch):
    def broken(**_: Any) -> int:
        raise RuntimeError("results store is down")

    monkeypatch.setattr(request_source.store, "record_download", broken)
    response = _ask(site, "owner1", claims="CLM-1")
    assert response.status_code == 503
    assert b"PK" not in response.content


def test_a_browser_that_posted_the_form_is_told_on_a_page_what_is_wrong(site, request_source):
    response = site["client"].post(
        "/metaudit/packets/request",
        data={"practice_id": "PR-1", "reference": "ref", "claims": "CLM-1, <b>NOPE</b>"},
        headers=_as(site, "owner1", Origin="http://airflow.test", Accept="text/html"),
        follow_redirects=False,
    )
    assert response.status_code == 422
    assert response.headers["content-type"].startswith("text/html")
    assert "Records request not answered" in response.text
    assert "&lt;b&gt;NOPE&lt;/b&gt;" in response.text and "<b>NOPE" not in response.text
    assert 'href="/metaudit/packets?practice_id=PR-1"' in response.text
