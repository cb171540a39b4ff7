"""The compliance dashboard and accepted findings (issue #17) end to end: the real
api-server of conftest.py, Airflow's login page, Chromium, and a results store filled by
the nightly run's own stages (plan, extract, validate, persist) on two audit dates.

The tests run in file order: owner1 (PR0001 only) reads the dashboard, then accepts one
finding and sees it leave the open count; the admin sees the network ranked.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from e2e.conftest import AS_OF, PRACTICES, MetAuditServer

if TYPE_CHECKING:
    from playwright.sync_api import BrowserContext, Page

    from metaudit.results import ResultsStore

pytestmark = [pytest.mark.slow, pytest.mark.airflow]

VISIBLE_MS = 30_000
# Two audit dates, so the history chart has more than one bar.
AUDIT_DATES = ((date.fromisoformat(AS_OF) - timedelta(days=7)).isoformat(), AS_OF)
PERSIST = """
import sys
from datetime import date
from metaudit.pipeline import stages

source, store_url, practice_list, *days = sys.argv[1:]
practices = practice_list.split(",")
for number, day in enumerate(days):
    run_id = f"e2e-dashboard-{number}"
    as_of = date.fromisoformat(day)
    stages.plan_run(
        source, store_url, run_id=run_id, dag_id="met_compliance_nightly", as_of=as_of,
        wanted=practices,
    )
    for work in stages.extract(source, as_of, practices, store_url=store_url, run_id=run_id):
        validated = stages.validate_practice(work["practice_id"], work["partition"], day)
        stages.persist_practice(store_url, run_id, validated)
"""


@pytest.fixture(scope="module")
def store(metaudit_server: MetAuditServer) -> Iterator[ResultsStore]:
    """The server's results store, filled by the nightly stages for both practices."""
    from metaudit.results import ResultsStore, default_url

    url = default_url(metaudit_server.root / "data")
    log = metaudit_server.root / "logs" / "persist.log"
    with log.open("wb") as out:
        result = subprocess.run(
            [
                sys.executable,
                "-c",
                PERSIST,
                str(metaudit_server.root / "demo.sqlite"),
                url,
                ",".join(PRACTICES),
                *AUDIT_DATES,
            ],
            env=metaudit_server.env,
            stdout=out,
            stderr=subprocess.STDOUT,
            timeout=600,
        )
    assert result.returncode == 0, log.read_text(errors="replace")[-3000:]
    opened = ResultsStore.open(url)
    yield opened
    opened.close()


def _tile(page: Page, tile: str) -> int:
    value = page.locator(f"#{tile}").get_attribute("data-count")
    assert value is not None, f"no #{tile} tile"
    return int(value)


def _screenshot(page: Page, name: str, artifacts: Path, tmp_path: Path) -> None:
    """Save a full-page screenshot into build/e2e and check it is not blank."""
    from PIL import Image

    shot = tmp_path / name
    page.screenshot(path=str(shot), full_page=True)
    shutil.copyfile(shot, artifacts / name)
    with Image.open(shot) as image:
        assert image.format == "PNG"
        width, height = image.size
        assert width >= 800 and height >= 300, image.size
        colours = image.convert("RGB").getcolors(maxcolors=width * height) or []
    assert len(colours) >= 8, f"{name}: {len(colours)} colours, the page rendered (nearly) blank"
    background = max(count for count, _ in colours)
    assert background < 0.98 * width * height, f"{name}: one colour covers almost everything"


def _open_client(store: ResultsStore) -> dict[str, Any]:
    """A PR0001 finding open on the last audit date, of a client, not accepted."""
    on_last = {f.fingerprint for f in store.findings(date.fromisoformat(AS_OF), "PR0001")}
    for row in store.history("PR0001"):
        if row["resolved_on"] is None and row["client_id"] and row["fingerprint"] in on_last:
            return row
    pytest.fail("the demo's PR0001 has no open finding of a client on the last audit date")


# ----------------------------------------------------------------------------- 1


def test_owner1_reads_the_dashboard_with_the_stores_numbers(
    owner1_context: BrowserContext,
    metaudit_server: MetAuditServer,
    store: ResultsStore,
    e2e_artifacts_dir: Path,
    tmp_path: Path,
) -> None:
    from playwright.sync_api import expect

    page = owner1_context.new_page()
    response = page.goto(metaudit_server.url("/metaudit/dashboard"))
    assert response is not None and response.status == 200, response and response.status
    chart = page.locator("svg#open-history")
    expect(chart).to_be_visible(timeout=VISIBLE_MS)
    last = date.fromisoformat(AS_OF)
    history = store.open_by_severity("PR0001", last)
    assert [d.as_of.isoformat() for d in history] == list(AUDIT_DATES)
    bars = chart.locator("g.day").evaluate_all(
        "groups => groups.map(g => [g.dataset.asOf, Number(g.dataset.total)])"
    )
    assert bars == [[d.as_of.isoformat(), d.total] for d in history]
    assert chart.locator("g.day rect").count() > 0, "the chart draws no bar"
    assert _tile(page, "open-total") == history[-1].total > 0
    for severity, n in history[-1].counts.items():
        assert _tile(page, f"open-{severity}") == n
    exposure = page.locator("#exposure-total").get_attribute("data-cents")
    assert exposure == str(sum(store.exposure_by_class("PR0001", last).values()))
    rules = page.locator("#top-rules tr[data-rule-id]").evaluate_all(
        "rows => rows.map(r => [r.dataset.ruleId, Number(r.dataset.open)])"
    )
    assert rules == [[r.rule_id, r.open] for r in store.top_rules("PR0001", last)]
    staff = page.locator("#staff tr[data-staff-id]").evaluate_all(
        "rows => rows.map(r => [r.dataset.staffId, Number(r.dataset.count)])"
    )
    assert staff == [[s.staff_id, s.findings] for s in store.staff_documentation("PR0001", last)]
    assert page.locator("#ranking").count() == 0, "owner1 is shown the network ranking"
    assert "PR0002" not in page.content()
    _screenshot(page, "dashboard-page.png", e2e_artifacts_dir, tmp_path)

    # Another practice's dashboard is refused.
    refused = owner1_context.request.get(
        metaudit_server.url("/metaudit/dashboard?practice_id=PR0002"), max_redirects=0
    )
    assert refused.status == 403
    page.close()


# ----------------------------------------------------------------------------- 2


def test_owner1_accepts_a_finding_and_it_leaves_the_open_count(
    owner1_context: BrowserContext,
    metaudit_server: MetAuditServer,
    store: ResultsStore,
    e2e_artifacts_dir: Path,
    tmp_path: Path,
) -> None:
    from playwright.sync_api import expect

    finding = _open_client(store)
    page = owner1_context.new_page()
    page.goto(metaudit_server.url("/metaudit/dashboard"))
    before = _tile(page, "open-total")
    accepted_before = _tile(page, "accepted-count")

    # The client's drill-down, through the page's own form.
    page.get_by_label("Client id").fill(finding["client_id"])
    page.get_by_role("button", name="Show").click()
    row = page.locator(f'#client-findings tr[data-fingerprint="{finding["fingerprint"]}"]')
    expect(row).to_be_visible(timeout=VISIBLE_MS)
    expect(page.locator("#client-packets")).to_have_attribute(
        "href", f"/metaudit/packets?practice_id=PR0001&client_id={finding['client_id']}"
    )
    until = (datetime.now(UTC).date() + timedelta(days=30)).isoformat()
    row.get_by_label("reason").fill("Payer's written exception, letter of 2026-03-30")
    row.get_by_label("until").fill(until)
    with page.expect_navigation(timeout=VISIBLE_MS):
        row.get_by_role("button", name="Accept").click()
    assert "notice=accepted" in page.url, page.url
    expect(page.locator("p.notice")).to_contain_text("Finding accepted")
    assert _tile(page, "open-total") == before - 1
    assert _tile(page, "accepted-count") == accepted_before + 1
    accepted_row = page.locator(f'#client-findings tr[data-fingerprint="{finding["fingerprint"]}"]')
    expect(accepted_row).to_contain_text(f"accepted by owner1 until {until}")
    expect(accepted_row.get_by_role("button", name="Withdraw")).to_be_visible()
    _screenshot(page, "dashboard-accepted.png", e2e_artifacts_dir, tmp_path)
    page.close()

    # The store agrees: the open count without it, and the trail names owner1.
    assert store.open_by_severity("PR0001", date.fromisoformat(AS_OF))[-1].total == before - 1
    (event,) = store.acceptance_trail("PR0001", finding["fingerprint"])
    assert (event.action, event.user_name, event.until) == (
        "accepted",
        "owner1",
        date.fromisoformat(until),
    )


# ----------------------------------------------------------------------------- 3


def test_admin_sees_the_practices_ranked(
    admin_context: BrowserContext, metaudit_server: MetAuditServer, store: ResultsStore
) -> None:
    from playwright.sync_api import expect

    page = admin_context.new_page()
    page.goto(metaudit_server.url("/metaudit/dashboard"))
    expect(page.locator("#ranking")).to_be_visible(timeout=VISIBLE_MS)
    ranked = page.locator("#ranking tr.practice").evaluate_all(
        "rows => rows.map(r => [r.dataset.practiceId, Number(r.dataset.openCritical),"
        " Number(r.dataset.exposure)])"
    )
    page.close()
    expected = [[r.practice_id, r.open_critical, r.exposure] for r in store.practice_ranking()]
    assert ranked == expected and {r[0] for r in ranked} == set(PRACTICES)
