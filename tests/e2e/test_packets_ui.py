"""The packets UI (issue #7) end to end: a real api-server, Airflow's login page, Chromium.

The tests run in file order and share one server (see conftest.py): owner1 may see PR0001
only, owner2 PR0002 only, and the Airflow admin everything. What owner1 downloads in the
first test is looked up again in the admin's download trail later on.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest

from e2e.conftest import AS_OF, PACKET_KEY, PASSWORDS, VENV_BIN, MetAuditServer, Packet

if TYPE_CHECKING:
    from playwright.sync_api import APIResponse, BrowserContext, Page, Response

pytestmark = [pytest.mark.slow, pytest.mark.airflow]

DAG_ID = "met_compliance_nightly"
VISIBLE_MS = 30_000  # the machine is slow and shared
# The rows of the packets table, as plain data (what a person sees, cell by cell).
ROWS_JS = """rows => rows.map(r => ({
    practice_id: r.dataset.practiceId ?? null,
    client_id: r.dataset.clientId || null,
    as_of: r.dataset.asOf ?? null,
    kind: r.dataset.kind ?? null,
    verifies: (r.querySelector('td.verifies')?.textContent ?? '').trim(),
    href: r.querySelector('a.download')?.getAttribute('href') ?? null,
    rebuild_forms: r.querySelectorAll('form.rebuild').length,
}))"""


@dataclass(frozen=True)
class Downloaded:
    """owner1's client packet, downloaded through the page's link."""

    packet: Packet
    file: Path
    sha256: str


def _packet_rows(page: Page) -> list[dict[str, Any]]:
    from playwright.sync_api import expect

    expect(page.locator("table#packets")).to_be_visible(timeout=VISIBLE_MS)
    rows: list[dict[str, Any]] = page.locator("table#packets tr.packet").evaluate_all(ROWS_JS)
    return rows


def _cells(page: Page, row_selector: str, columns: tuple[str, ...]) -> list[dict[str, str]]:
    """The text of the named cells (by class) of every row matching ``row_selector``."""
    script = (
        "(rows, columns) => rows.map(r => Object.fromEntries(columns.map(c => "
        "[c, (r.querySelector('td.' + c)?.textContent ?? '').trim()])))"
    )
    cells: list[dict[str, str]] = page.locator(row_selector).evaluate_all(script, list(columns))
    return cells


def _shown(response: Response | APIResponse | httpx.Response | None) -> str:
    """A response, for an assertion message: status, location and the start of the body."""
    if response is None:
        return "no response"
    headers: Mapping[str, str]
    if isinstance(response, httpx.Response):
        status, headers, body = response.status_code, response.headers, response.text
    else:
        status, headers = response.status, response.headers
        try:
            body = response.text()
        except Exception as exc:  # a redirect or download has no body to read
            body = f"(body unreadable: {type(exc).__name__})"
    location = headers.get("location")
    return f"HTTP {status}{f' -> {location}' if location else ''}: {body[:300]!r}"


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _verify(server: MetAuditServer, path: Path) -> subprocess.CompletedProcess[str]:
    env = dict(server.env, METAUDIT_PACKET_KEY=PACKET_KEY)
    return subprocess.run(
        [str(VENV_BIN / "metaudit"), "verify", str(path)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def _api_token(server: MetAuditServer, user: str) -> str:
    response = httpx.post(
        server.url("/auth/token"),
        json={"username": user, "password": PASSWORDS[user]},
        timeout=30,
    )
    assert response.status_code in (200, 201), f"POST /auth/token as {user}: {_shown(response)}"
    token: str = response.json()["access_token"]
    return token


def _dag_runs(server: MetAuditServer, token: str) -> list[dict[str, Any]]:
    response = httpx.get(
        server.url(f"/api/v2/dags/{DAG_ID}/dagRuns"),
        params={"limit": 100},
        headers={"Authorization": f"Bearer {token}"},
        timeout=30,
    )
    assert response.status_code == 200, f"GET dagRuns of {DAG_ID}: {_shown(response)}"
    runs: list[dict[str, Any]] = response.json()["dag_runs"]
    return runs


@pytest.fixture(scope="module")
def owner1_download(
    owner1_context: BrowserContext,
    metaudit_server: MetAuditServer,
    tmp_path_factory: pytest.TempPathFactory,
) -> Downloaded:
    """owner1 clicks the download link of a PR0001 client packet; the browser saves it."""
    packet = metaudit_server.client_packets("PR0001")[0]
    page = owner1_context.new_page()
    try:
        page.goto(metaudit_server.url("/metaudit/packets"))
        row = page.locator(
            f'table#packets tr.packet[data-practice-id="PR0001"][data-kind="client"]'
            f'[data-client-id="{packet.client_id}"]'
        )
        assert row.count() == 1, f"one row for {packet.client_id} expected, got {row.count()}"
        with page.expect_download(timeout=VISIBLE_MS) as download_info:
            row.locator("a.download").click()
        download = download_info.value
        assert download.failure() is None, f"download failed: {download.failure()}"
        folder = tmp_path_factory.mktemp("owner1_download")
        file = folder / download.suggested_filename
        download.save_as(file)
    finally:
        page.close()
    return Downloaded(packet=packet, file=file, sha256=_sha256(file))


# ----------------------------------------------------------------------------- 1


def test_owner1_lists_own_practice_and_downloads_a_verified_packet(
    owner1_context: BrowserContext,
    owner1_download: Downloaded,
    metaudit_server: MetAuditServer,
) -> None:
    page = owner1_context.new_page()
    response = page.goto(metaudit_server.url("/metaudit/packets"))
    assert response is not None and response.status == 200, _shown(response)
    rows = _packet_rows(page)
    page.close()

    assert rows, "owner1's packets page lists no packet"
    assert {r["practice_id"] for r in rows} == {"PR0001"}, f"owner1 sees {rows}"
    listed_clients = {str(r["client_id"]) for r in rows if r["kind"] == "client"}
    on_disk = {str(p.client_id) for p in metaudit_server.client_packets("PR0001")}
    assert listed_clients == on_disk, f"listed {sorted(listed_clients)}, built {sorted(on_disk)}"
    assert {r["as_of"] for r in rows if r["kind"] == "client"} == {AS_OF}
    assert [r for r in rows if r["kind"] == "practice"], "PR0001's practice packet is not listed"
    unverified = [r for r in rows if not r["verifies"].startswith("verified")]
    assert not unverified, f"rows not marked verified: {unverified}"
    assert all(r["href"] and r["href"].startswith("/metaudit/packets/download?") for r in rows)
    assert not any(r["rebuild_forms"] for r in rows), "owner1 (no admin) is offered Rebuild"

    # The browser saved the very file the packets command built, and it verifies on its own.
    downloaded = owner1_download
    assert downloaded.file.suffix == ".zip", downloaded.file.name
    assert downloaded.sha256 == _sha256(downloaded.packet.path)
    result = _verify(metaudit_server, downloaded.file)
    assert result.returncode == 0, f"metaudit verify: {result.stdout}{result.stderr}"

    # The practice packet comes as a zip attachment too (same signed-in browser).
    practice = metaudit_server.practice_packet("PR0001")
    served = owner1_context.request.get(
        metaudit_server.url(f"/metaudit/packets/download?{practice.download_query}"),
        max_redirects=0,
    )
    assert served.status == 200, _shown(served)
    assert served.headers["content-type"].startswith("application/zip"), served.headers
    assert served.headers.get("content-disposition", "").startswith("attachment"), served.headers
    assert hashlib.sha256(served.body()).hexdigest() == _sha256(practice.path)


# ----------------------------------------------------------------------------- 2


def test_owner1_is_refused_another_practice(
    owner1_context: BrowserContext, metaudit_server: MetAuditServer
) -> None:
    def get(query: str) -> APIResponse:
        return owner1_context.request.get(
            metaudit_server.url(f"/metaudit/packets/download?{query}"), max_redirects=0
        )

    for packet in (
        metaudit_server.client_packets("PR0002")[0],
        metaudit_server.practice_packet("PR0002"),
    ):
        refused = get(packet.download_query)
        assert refused.status == 403, f"{packet.download_query}: {_shown(refused)}"
        assert not refused.body().startswith(b"PK"), "a refused download carries a zip"

    page = owner1_context.new_page()
    response = page.goto(metaudit_server.url("/metaudit/packets?practice_id=PR0002"))
    assert response is not None, "no response for the page filtered to PR0002"
    if response.status != 403:
        assert response.status == 200, _shown(response)
        rows = _packet_rows(page)
        assert not [r for r in rows if r["practice_id"] == "PR0002"], f"owner1 sees {rows}"
    page.close()

    # Owner1's own practice: a packet that does not exist, and dates that are not dates.
    missing = get(f"practice_id=PR0001&as_of={AS_OF}&client_id=CL999999")
    assert missing.status == 404, _shown(missing)
    for malformed in (
        "practice_id=PR0001&as_of=2026-02-30&client_id=CL000005",
        "practice_id=PR0001&as_of=yesterday&client_id=CL000005",
        "practice_id=PR0001&month=2026-13",
    ):
        answer = get(malformed)
        assert answer.status in (400, 422), f"{malformed}: {_shown(answer)}"


# ----------------------------------------------------------------------------- 3


def test_anonymous_is_refused(
    new_context: Callable[..., BrowserContext], metaudit_server: MetAuditServer
) -> None:
    packet = metaudit_server.client_packets("PR0001")[0]
    download_url = metaudit_server.url(f"/metaudit/packets/download?{packet.download_query}")
    with httpx.Client(follow_redirects=False, timeout=30) as anonymous:
        refused = anonymous.get(download_url)
        assert refused.status_code == 401, _shown(refused)
        assert not refused.content.startswith(b"PK"), "an anonymous answer carries a zip"

        trail = anonymous.get(metaudit_server.url("/metaudit/downloads"))
        assert trail.status_code == 401, _shown(trail)

        # The same URL with owner1's bearer token is served: the 401 was for the missing user.
        token = _api_token(metaudit_server, "owner1")
        served = anonymous.get(download_url, headers={"Authorization": f"Bearer {token}"})
        assert served.status_code == 200, _shown(served)
        assert served.content.startswith(b"PK")

    # A browser without a session is sent to Airflow's login page, to come back after it.
    page = new_context().new_page()
    response = page.goto(metaudit_server.url("/metaudit/packets"))
    assert response is not None
    page.wait_for_url("**/auth/login**", timeout=VISIBLE_MS)
    assert "next=%2Fmetaudit%2Fpackets" in page.url, page.url
    assert page.locator("table#packets").count() == 0, "packets shown without a login"


# ----------------------------------------------------------------------------- 4


def test_admin_sees_owner1_download_in_the_trail(
    admin_context: BrowserContext,
    owner1_context: BrowserContext,
    owner1_download: Downloaded,
    metaudit_server: MetAuditServer,
) -> None:
    page = admin_context.new_page()
    response = page.goto(metaudit_server.url("/metaudit/downloads"))
    assert response is not None and response.status == 200, _shown(response)
    page.locator("table#downloads").wait_for(timeout=VISIBLE_MS)
    downloads = _cells(
        page, "table#downloads tr.download", ("user", "practice", "client", "as-of", "sha256")
    )
    page.close()
    expected = {
        "user": "owner1",
        "practice": "PR0001",
        "client": owner1_download.packet.client_id,
        "as-of": AS_OF,
        "sha256": owner1_download.sha256,
    }
    assert expected in downloads, f"{expected} not in the trail: {downloads}"

    page = owner1_context.new_page()
    refused = page.goto(metaudit_server.url("/metaudit/downloads"))
    assert refused is not None and refused.status == 403, _shown(refused)
    assert page.locator("table#downloads").count() == 0
    page.close()


# ----------------------------------------------------------------------------- 5


def test_admin_rebuild_triggers_the_nightly_dag(
    admin_context: BrowserContext, owner1_context: BrowserContext, metaudit_server: MetAuditServer
) -> None:
    token = _api_token(metaudit_server, "admin")
    runs_before = {r["dag_run_id"] for r in _dag_runs(metaudit_server, token)}

    # Refused before anything is triggered: a form posted from another site with the admin's
    # cookie (cross-site request forgery), and a non-admin posting from the page's own origin.
    rebuild_url = metaudit_server.url("/metaudit/packets/rebuild")
    form_fields: dict[str, str | float | bool] = {
        "practice_id": "PR0001",
        "as_of": AS_OF,
        "client_id": str(metaudit_server.client_packets("PR0001")[0].client_id),
    }
    forged = admin_context.request.post(
        rebuild_url,
        form=form_fields,
        headers={"Origin": "http://attacker.example", "Referer": "http://attacker.example/"},
        max_redirects=0,
    )
    assert forged.status in (400, 403), f"cross-site rebuild: {_shown(forged)}"
    not_admin = owner1_context.request.post(
        rebuild_url,
        form=form_fields,
        headers={"Origin": metaudit_server.base_url},
        max_redirects=0,
    )
    assert not_admin.status == 403, f"owner1's rebuild: {_shown(not_admin)}"

    page = admin_context.new_page()
    page.goto(metaudit_server.url("/metaudit/packets"))
    rows = _packet_rows(page)
    assert {r["practice_id"] for r in rows} == {"PR0001", "PR0002"}, "admin sees every practice"
    client_rows = [r for r in rows if r["kind"] == "client"]
    assert all(r["rebuild_forms"] == 1 for r in client_rows), f"Rebuild per client row: {rows}"
    row = page.locator('table#packets tr.packet[data-practice-id="PR0001"][data-kind="client"]')
    row = row.first
    client_id = row.get_attribute("data-client-id")
    form = row.locator("form.rebuild")
    assert form.get_attribute("method") == "post"
    assert form.get_attribute("action") == "/metaudit/packets/rebuild"
    fields = form.locator("input[name]").evaluate_all(
        "inputs => Object.fromEntries(inputs.map(i => [i.name, i.value]))"
    )
    assert {k: fields.get(k) for k in ("practice_id", "as_of", "client_id")} == {
        "practice_id": "PR0001",
        "as_of": AS_OF,
        "client_id": client_id,
    }, fields
    with page.expect_response(
        lambda r: r.request.method == "POST" and "/metaudit/packets/rebuild" in r.url,
        timeout=VISIBLE_MS,
    ) as answer_info:
        form.get_by_role("button", name="Rebuild").click()
    answer = answer_info.value
    assert answer.status == 303, _shown(answer)
    assert "/metaudit/packets" in answer.headers["location"], _shown(answer)
    page.wait_for_load_state()
    assert "/metaudit/packets" in page.url
    assert not page.url.split("?")[0].endswith("/rebuild"), page.url

    new_runs = [r for r in _dag_runs(metaudit_server, token) if r["dag_run_id"] not in runs_before]
    assert len(new_runs) == 1, f"one new run of {DAG_ID} expected, got {new_runs}"
    run = new_runs[0]
    conf = run["conf"] or {}
    assert conf.get("practice_ids") == ["PR0001"], conf
    assert conf.get("rebuild_packets") is True, conf
    assert conf.get("as_of") == AS_OF, conf
    if "triggering_user_name" in run:
        assert run["triggering_user_name"] == "admin", run

    page.goto(metaudit_server.url("/metaudit/downloads"))
    page.locator("table#rebuilds").wait_for(timeout=VISIBLE_MS)
    rebuilds = _cells(page, "table#rebuilds tr.rebuild", ("user", "practice", "dag-run"))
    page.close()
    recorded = [
        r
        for r in rebuilds
        if r["user"] == "admin" and r["practice"] == "PR0001" and run["dag_run_id"] in r["dag-run"]
    ]
    assert recorded, f"rebuild of {client_id} as {run['dag_run_id']} not listed: {rebuilds}"


# ----------------------------------------------------------------------------- 6


def test_airflow_navigation_shows_the_packets_page(
    owner1_context: BrowserContext, metaudit_server: MetAuditServer
) -> None:
    from playwright.sync_api import expect

    # What the UI builds its navigation from: the plugin's external view.
    token = _api_token(metaudit_server, "owner1")
    plugins = httpx.get(
        metaudit_server.url("/api/v2/plugins"),
        headers={"Authorization": f"Bearer {token}"},
        timeout=30,
    )
    assert plugins.status_code == 200, _shown(plugins)
    views = [v for p in plugins.json()["plugins"] for v in p["external_views"]]
    entry = [v for v in views if v.get("url_route") == "metaudit-packets"]
    assert entry, f"no external view with url_route metaudit-packets: {views}"
    assert entry[0]["name"] == "Audit packets", entry[0]

    # The entry sits in its category's menu (Browse, Admin ...) or, without one, in the bar.
    page = owner1_context.new_page()
    page.goto(metaudit_server.url("/"))
    _follow_navigation(page, entry[0].get("category"), "Audit packets")
    frame = page.frame_locator("iframe")
    expect(frame.locator("table#packets")).to_be_visible(timeout=VISIBLE_MS)
    practices = set(
        frame.locator("table#packets tr.packet").evaluate_all(
            "rows => rows.map(r => r.dataset.practiceId)"
        )
    )
    page.close()
    assert practices == {"PR0001"}, f"the embedded page shows {practices} to owner1"


def _follow_navigation(page: Page, category: object, name: str) -> None:
    """Open the UI's menu entry `name` (under `category`, if any) and land on its page.

    The React UI may still be rendering its navigation when the menu opens: a click
    during the menu's opening animation, or on an item that is re-rendered under it,
    is lost (CI saw it once). So the click is retried from a fresh menu until the
    address changes, and only the address is waited for, not the page's load event.
    """
    from playwright.sync_api import Error as PlaywrightError
    from playwright.sync_api import expect

    attempts = 3
    for attempt in range(1, attempts + 1):
        if category:
            page.keyboard.press("Escape")  # close a menu left open by the last try
            menu_button = page.get_by_role("button", name=str(category))
            expect(menu_button).to_be_visible(timeout=VISIBLE_MS)
            menu_button.click()
            nav = page.get_by_role("menuitem", name=name)
        else:
            nav = page.get_by_role("link", name=name)
        expect(nav).to_be_visible(timeout=VISIBLE_MS)
        nav.click()
        try:
            page.wait_for_url("**/plugin/metaudit-packets", timeout=10_000, wait_until="commit")
            return
        except PlaywrightError:
            if attempt == attempts:
                raise


# ----------------------------------------------------------------------------- 7


def test_packets_page_screenshot(
    owner1_context: BrowserContext,
    metaudit_server: MetAuditServer,
    e2e_artifacts_dir: Path,
    tmp_path: Path,
) -> None:
    from PIL import Image

    page = owner1_context.new_page()
    page.goto(metaudit_server.url("/metaudit/packets"))
    rows = _packet_rows(page)
    assert rows, "nothing to show"
    table = page.locator("table#packets").bounding_box()
    shot = tmp_path / "packets-page.png"
    page.screenshot(path=str(shot), full_page=True)
    page.close()
    shutil.copyfile(shot, e2e_artifacts_dir / "packets-page.png")

    with Image.open(shot) as image:
        assert image.format == "PNG"
        width, height = image.size
        assert width >= 800 and height >= 300, image.size
        colours = image.convert("RGB").getcolors(maxcolors=width * height) or []
    assert len(colours) >= 8, f"{len(colours)} colours: the page rendered (nearly) blank"
    background = max(count for count, _ in colours)
    assert background < 0.98 * width * height, "one colour covers almost the whole page"
    assert table is not None and table["width"] > 0 and table["height"] > 0, table
    assert table["x"] + table["width"] <= width and table["y"] + table["height"] <= height


# ----------------------------------------------------------------------------- 8


def test_download_ids_are_checked_and_cannot_leave_the_packets_folder(
    metaudit_server: MetAuditServer,
) -> None:
    """Ids that cannot be ids are bad requests; path-like ids never reach a file outside.

    Asked as the admin, who may see every practice, so the answers are about the request
    itself and not about a practice the user is not granted. Zips are planted where a
    path-traversing id would lead.
    """
    import zipfile

    root = metaudit_server.root
    for planted in (root / "planted.zip", root / f"practice-{AS_OF[:7]}.zip"):
        with zipfile.ZipFile(planted, "w") as archive:
            archive.writestr("planted.txt", "outside the packets folder")
    token = _api_token(metaudit_server, "admin")
    with httpx.Client(headers={"Authorization": f"Bearer {token}"}, timeout=30) as admin:

        def get(query: str) -> httpx.Response:
            return admin.get(metaudit_server.url(f"/metaudit/packets/download?{query}"))

        for malformed in (
            f"practice_id=&as_of={AS_OF}&client_id=CL000005",
            f"practice_id=PR0001&as_of={AS_OF}&client_id=CL000005%00",
            f"practice_id=PR0001&as_of={AS_OF}&client_id={'C' * 65}",
            f"practice_id=PR0001&month={AS_OF[:7]}&client_id=CL000005",
        ):
            answer = get(malformed)
            assert answer.status_code in (400, 422), f"{malformed}: {_shown(answer)}"
        for traversing in (
            f"practice_id=PR0001&as_of={AS_OF}&client_id=..%2F..%2F..%2Fplanted",
            f"practice_id=..&month={AS_OF[:7]}",
            f"practice_id=..%2FPR0001%2F..&month={AS_OF[:7]}",
        ):
            answer = get(traversing)
            assert answer.status_code in (400, 404, 422), f"{traversing}: {_shown(answer)}"
            assert b"planted.txt" not in answer.content, f"{traversing} served a planted file"
