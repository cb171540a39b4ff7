"""The dashboard page and the accept / withdraw routes (FastAPI TestClient on our app).

Airflow's authentication is replaced by a stand-in user (tests/integration covers the
real one, with Airflow's own app and tokens); everything after it is the app's own:
the grants, the same-origin check, the store, the page's numbers.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from dashboard_builders import D2, D3, TODAY, dashboard_store, ref, signed_late
from fastapi import HTTPException
from fastapi.testclient import TestClient

from metaudit.results import ResultsStore
from metaudit.spec.settings import Settings
from metaudit.web.access import access_policy
from metaudit.web.app import _airflow_user, create_app
from metaudit.web.catalog import PacketCatalog
from metaudit.web.context import ContextHolder, WebContext

BASE = "http://airflow.test"
SAME = {"Origin": BASE}
GRANTS = {
    "access": {"admins": ["dana"]},
    "practices": {"PR-1": {"packet_viewers": ["owner1"]}, "PR-2": {"packet_viewers": ["owner2"]}},
}


@pytest.fixture
def site(tmp_path: Path) -> Iterator[dict[str, Any]]:
    store = dashboard_store(f"sqlite:///{tmp_path / 'results.sqlite'}")
    context = WebContext(
        policy=access_policy(Settings.from_dict(GRANTS)),
        catalog=PacketCatalog(tmp_path / "packets"),
        store=store,
        packet_key=None,
        clock=lambda: TODAY,
    )
    holder = ContextHolder()
    holder.set(context)
    app = create_app(holder)
    signed_in: dict[str, str | None] = {"name": None}

    def user() -> Any:
        if signed_in["name"] is None:
            raise HTTPException(401, "Not authenticated")
        name = signed_in["name"]
        return SimpleNamespace(get_name=lambda: name, role="viewer")

    app.dependency_overrides[_airflow_user] = user
    with TestClient(app, base_url=BASE) as client:
        yield {"client": client, "store": store, "as": signed_in}
    store.close()


def _get(site: dict[str, Any], user: str | None, **params: Any) -> Any:
    site["as"]["name"] = user
    return site["client"].get("/dashboard", params=params, follow_redirects=False)


def _post(site: dict[str, Any], user: str, path: str, headers: Any = SAME, **data: Any) -> Any:
    site["as"]["name"] = user
    return site["client"].post(path, data=data, headers=headers, follow_redirects=False)


def _accept(site: dict[str, Any], user: str, **overrides: Any) -> Any:
    data = {
        "practice_id": "PR-1",
        "fingerprint": ref(D3).fingerprint,
        "reason": "Payer ACME written exception",
        "until": (D3 + timedelta(days=10)).isoformat(),
        "client_id": "C1",
    }
    data.update(overrides)
    headers = data.pop("headers", SAME)
    return _post(site, user, "/findings/accept", headers=headers, **data)


def _count(html: str, tile: str) -> int:
    found = re.search(rf'id="{tile}" data-(?:count|cents)="(\d+)"', html)
    assert found, f"no {tile} tile"
    return int(found.group(1))


# ------------------------------------------------------------------------------ the page


def test_an_owner_sees_their_practice_with_the_stores_numbers(site) -> None:
    response = _get(site, "owner1")
    assert response.status_code == 200, response.text
    html = response.text
    store: ResultsStore = site["store"]
    history = store.open_by_severity("PR-1", D3)
    assert _count(html, "open-total") == history[-1].total == 2
    for severity in ("critical", "warning", "notice"):
        assert _count(html, f"open-{severity}") == history[-1].counts[severity]
    assert _count(html, "accepted-count") == store.accepted_count("PR-1", D3) == 1
    assert _count(html, "exposure-total") == sum(store.exposure_by_class("PR-1", D3).values())
    # The chart: one group of bars per audit date, each with the date's open total.
    chart = re.search(r'<svg[^>]*id="open-history".*?</svg>', html, re.S)
    assert chart is not None
    totals = re.findall(r'<g class="day" data-as-of="([\d-]+)" data-total="(\d+)"', chart.group(0))
    assert [(day, int(n)) for day, n in totals] == [(d.as_of.isoformat(), d.total) for d in history]
    assert 'data-staff-id="ST-1" data-count="1"' in html
    assert 'data-rule-id="REF-001" data-open="1"' in html
    assert "K1" in html and "K2" not in html  # the week's filing deadline only
    assert "Acme" in html and "$10.00" in html
    assert "PR-2" not in html and "Dale" not in html  # nothing of the other practice


def test_others_practices_and_clients_are_refused(site) -> None:
    assert _get(site, "owner1", practice_id="PR-2").status_code == 403
    assert _get(site, "owner1", practice_id="PR-2", client_id="C9").status_code == 403
    assert _get(site, "owner1", practice_id="PR-1", client_id="C9").status_code == 404
    assert _get(site, "nobody", practice_id="PR-1").status_code == 403
    assert _get(site, None).status_code == 401
    assert _get(site, "owner1", client_id="C1").status_code == 422
    assert _get(site, "owner1", practice_id="x" * 65).status_code == 422


def test_a_user_granted_nothing_sees_an_empty_ranking_and_why(site) -> None:
    response = _get(site, "nobody")
    assert response.status_code == 200
    assert "not granted any practice" in response.text
    assert 'class="practice"' not in response.text


def test_an_owner_before_the_first_run_is_told_so(site) -> None:
    site["store"].start_run("r-new", "dag", D3, [], ["PR-3"], {"PR-3": "New"})
    context = site["client"].app.state.metaudit.get()
    context.policy = access_policy(
        Settings.from_dict({"practices": {"PR-3": {"packet_viewers": ["owner3"]}}})
    )
    response = _get(site, "owner3")
    assert response.status_code == 200
    assert "No practice you may see has stored results yet." in response.text
    assert _get(site, "owner3", practice_id="PR-3").status_code == 404


def test_an_admin_sees_the_network_ranked(site) -> None:
    html = _get(site, "dana").text
    ranked = re.findall(
        r'data-practice-id="([^"]+)" data-open-critical="(\d+)" data-exposure="(\d+)"', html
    )
    expected = [
        (r.practice_id, str(r.open_critical), str(r.exposure))
        for r in site["store"].practice_ranking()
    ]
    assert ranked == expected == [("PR-2", "2", "400"), ("PR-1", "1", "1500")]
    by_exposure = re.findall(
        r'data-practice-id="([^"]+)"', _get(site, "dana", rank="exposure").text
    )
    assert by_exposure == ["PR-1", "PR-2"]
    assert _get(site, "dana", rank="name").status_code == 422
    assert _get(site, "dana", practice_id="PR-2").status_code == 200


def test_the_client_drill_down_lists_history_acceptance_and_the_packet_link(site) -> None:
    html = _get(site, "owner1", practice_id="PR-1", client_id="C2").text
    assert "accepted by <strong>lead</strong> until 2026-03-02" in html
    assert "(lapsed)" not in html  # today is 2026-03-01 in these tests
    assert "payer letter" in html  # the reason shows on the page (not in the email)
    assert "/packets?practice_id=PR-1&amp;client_id=C2" in html
    c1 = _get(site, "owner1", practice_id="PR-1", client_id="C1").text
    assert re.search(r"DOC-008.*?2026-03-03", c1, re.S)  # resolved on D3
    assert 'action="/metaudit/findings/accept"' in c1


def test_the_page_keeps_the_csp_and_runs_no_script(site) -> None:
    response = _get(site, "owner1")
    assert "script-src" not in response.headers["content-security-policy"]
    assert response.headers["content-security-policy"].startswith("default-src 'none'")
    assert "<script" not in response.text and " style=" not in response.text
    assert not re.search(r'(?:src|href)="https?://', response.text)
    packets_page = site["client"].get("/packets")
    assert 'href="/metaudit/dashboard"' in packets_page.text


# --------------------------------------------------------------------- accept, withdraw


def test_an_owner_accepts_a_finding_and_it_leaves_the_open_count(site) -> None:
    before = _count(_get(site, "owner1").text, "open-total")
    response = _accept(site, "owner1")
    assert response.status_code == 303, response.text
    assert response.headers["location"] == (
        "/metaudit/dashboard?practice_id=PR-1&notice=accepted&client_id=C1"
    )
    html = _get(site, "owner1").text
    assert _count(html, "open-total") == before - 1
    assert _count(html, "open-critical") == 0
    (event,) = [e for e in site["store"].acceptance_trail("PR-1") if e.user_name == "owner1"]
    assert (event.action, event.reason, event.until) == (
        "accepted",
        "Payer ACME written exception",
        D3 + timedelta(days=10),
    )
    # Withdrawn: counted open again, and the trail keeps both.
    withdrawn = _post(
        site,
        "owner1",
        "/findings/withdraw",
        practice_id="PR-1",
        fingerprint=ref(D3).fingerprint,
        client_id="C1",
    )
    assert withdrawn.status_code == 303
    assert _count(_get(site, "owner1").text, "open-total") == before
    actions = [e.action for e in site["store"].acceptance_trail("PR-1", ref(D3).fingerprint)]
    assert actions == ["accepted", "withdrawn"]


@pytest.mark.parametrize(
    ("changes", "status", "message"),
    [
        ({"reason": "  "}, 422, "a reason is required"),
        ({"reason": "x" * 1001}, 422, "at most 1000 characters"),
        ({"until": "2026-02-28"}, 422, "in the past"),
        ({"until": "2026-02-30"}, 422, "until must be a date"),
        ({"until": ""}, 422, "until (the last audit date"),
        ({"fingerprint": "no-such-finding"}, 404, "has no finding"),
        ({"fingerprint": signed_late(D2).fingerprint, "practice_id": "PR-2"}, 403, "not granted"),
    ],
)
def test_bad_acceptances_are_refused_with_a_clear_message(site, changes, status, message) -> None:
    response = _accept(site, "owner1", **changes)
    assert response.status_code == status
    assert message in response.json()["detail"]
    assert [e for e in site["store"].acceptance_trail("PR-1") if e.user_name == "owner1"] == []


@pytest.mark.parametrize(
    "headers",
    [
        {"Sec-Fetch-Site": "cross-site"},
        {"Origin": "https://evil.example"},
        {},  # a cookie's post with neither Origin nor Referer
    ],
)
def test_cross_site_accepts_and_withdrawals_are_refused(site, headers) -> None:
    assert _accept(site, "owner1", headers=headers).status_code == 403
    withdraw = _post(
        site,
        "owner1",
        "/findings/withdraw",
        headers=headers,
        practice_id="PR-1",
        fingerprint=signed_late(D2).fingerprint,
    )
    assert withdraw.status_code == 403
    assert len(site["store"].acceptance_trail("PR-1")) == 2  # the fixture's two


def test_only_granted_users_and_admins_accept(site) -> None:
    assert _accept(site, "owner2").status_code == 403
    assert _accept(site, "nobody").status_code == 403
    assert _accept(site, "dana").status_code == 303
    assert site["store"].acceptances("PR-1", date(2026, 3, 3))[ref(D3).fingerprint].accepted_by == (
        "dana"
    )


def test_withdrawing_what_is_not_accepted_says_so(site) -> None:
    response = _post(
        site, "owner1", "/findings/withdraw", practice_id="PR-1", fingerprint=ref(D3).fingerprint
    )
    assert response.status_code == 422
    assert "no acceptance to withdraw" in response.json()["detail"]


# ----------------------------------------------------------------------------- the charts


def test_the_history_chart_stacks_each_dates_severities_to_scale() -> None:
    from metaudit.results.dashboard import SeverityDay
    from metaudit.web import charts

    days = [
        SeverityDay(date(2026, 3, 1), {"critical": 3, "warning": 1, "notice": 0}),
        SeverityDay(date(2026, 3, 2), {"critical": 0, "warning": 0, "notice": 0}),
        SeverityDay(date(2026, 3, 3), {"critical": 1, "warning": 2, "notice": 2}),
    ]
    svg = str(charts.severity_history(days))
    bars = re.findall(r'<rect class="sev-(\w+)"[^>]*height="([\d.]+)"[^>]*data-count="(\d+)"', svg)
    # Every bar's height is its count on the same scale (the axis top is 5 here).
    scale = {round(float(h) / int(n), 1) for _, h, n in bars}
    assert len(scale) == 1 and [n for _, _, n in bars] == ["3", "1", "1", "2", "2"]
    assert ">5</text>" in svg and "2026-03-01" in svg and "2026-03-03" in svg
    assert "no audit dates" in str(charts.severity_history([]))
    # A legend names each severity's colour.
    legend = re.findall(r'<rect class="sev-(\w+) legend"[^>]*/><text[^>]*>(\w+)</text>', svg)
    assert legend == [("critical", "critical"), ("warning", "warning"), ("notice", "notice")]
