"""A records request answered from the packets page (issue #18), end to end.

owner1 (granted PR0001) signs in on Airflow's login page, opens the packets page in
Chromium, fills the records-request form for three claims of one client and downloads the
answer. A reviewer then holds only the zip, openssl and sha256sum: the command lines of
its VERIFY.txt (and nothing of MET Audit) show it intact and signed by the deployment's
Ed25519 key (its fingerprint is the one the deployment's public key has); a changed
document or manifest fails them. The admin's download trail names owner1 and the
request's reference.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import zipfile
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from e2e.conftest import AS_OF, MetAuditServer

if TYPE_CHECKING:
    from playwright.sync_api import BrowserContext

pytestmark = [pytest.mark.slow, pytest.mark.airflow]

VISIBLE_MS = 60_000  # the request runs the practice's check on the server: slow machine
REFERENCE = "Payer X audit 2026-117"


def _three_claims_of_one_client(source: Path) -> tuple[str, list[str]]:
    """A client of PR0001 with at least three live claims with dated lines in the as-of
    view (what the request can answer), and three of them."""
    from metaudit.check.engine import load_source
    from metaudit.check.view import build_view

    view = build_view(
        load_source(source, date.fromisoformat(AS_OF)), date.fromisoformat(AS_OF), ["PR0001"]
    )
    lines = view.tables["claim_lines"]
    dated = set(lines.loc[lines["service_date"].notna(), "claim_id"].astype(str))
    claims = view.tables["claims"]
    by_client: dict[str, list[str]] = {}
    for claim, client in zip(
        claims["claim_id"].astype(str), claims["client_id"].astype(str), strict=True
    ):
        if claim in dated:
            by_client.setdefault(client, []).append(claim)
    client = next(c for c, found in sorted(by_client.items()) if len(found) >= 3)
    return client, sorted(by_client[client])[:3]


def _verify_txt_commands(folder: Path) -> list[str]:
    return [
        line[2:]
        for line in (folder / "VERIFY.txt").read_text(encoding="utf-8").splitlines()
        if line.startswith("$ ")
    ]


def _run(command: str, folder: Path) -> subprocess.CompletedProcess[str]:
    """A VERIFY.txt command line in the unzipped packet, with the system's tools only."""
    return subprocess.run(
        ["bash", "-c", command],
        cwd=folder,
        capture_output=True,
        text=True,
        env={"PATH": os.environ["PATH"], "LC_ALL": "C"},
    )


@pytest.mark.skipif(
    not (shutil.which("openssl") and shutil.which("sha256sum") and shutil.which("bash")),
    reason="needs openssl, sha256sum and bash",
)
def test_an_owner_answers_a_request_for_three_claims_and_a_reviewer_checks_it_with_openssl(
    owner1_context: BrowserContext,
    admin_context: BrowserContext,
    metaudit_server: MetAuditServer,
    e2e_artifacts_dir: Path,
    tmp_path: Path,
) -> None:
    assert metaudit_server.source is not None and metaudit_server.public_key is not None
    client, claims = _three_claims_of_one_client(metaudit_server.source)

    page = owner1_context.new_page()
    try:
        response = page.goto(metaudit_server.url("/metaudit/packets"))
        assert response is not None and response.status == 200
        page.locator("details.records-request summary").click()
        form = page.locator("form#records-request")
        form.locator('select[name="practice_id"]').select_option("PR0001")
        form.locator('input[name="reference"]').fill(REFERENCE)
        form.locator('textarea[name="claims"]').fill(", ".join(claims))
        with page.expect_download(timeout=VISIBLE_MS * 3) as download_info:
            form.get_by_role("button", name="Build and download").click()
        download = download_info.value
        assert download.failure() is None, (
            f"download failed: {download.failure()}\n{metaudit_server.log_tail()}"
        )
        file = tmp_path / download.suggested_filename
        download.save_as(file)
    finally:
        page.close()
    assert file.name.startswith("metaudit-PR0001-request-") and file.suffix == ".zip"

    # The reviewer: the zip, openssl and sha256sum, nothing else.
    folder = tmp_path / "unzipped"
    with zipfile.ZipFile(file) as archive:
        archive.extractall(folder)
    commands = _verify_txt_commands(folder)
    assert [c.split()[:2] for c in commands] == [
        ["openssl", "pkey"],
        ["openssl", "pkeyutl"],
        ["openssl", "pkeyutl"],
        ["sha256sum", "-c"],
    ]
    runs = [_run(command, folder) for command in commands]
    for command, run in zip(commands, runs, strict=True):
        assert run.returncode == 0, (command, run.stdout, run.stderr)
    # Signed by the deployment: the packet's key is the deployment's own, by fingerprint.
    deployment_der = subprocess.run(
        ["openssl", "pkey", "-pubin", "-in", str(metaudit_server.public_key), "-outform", "DER"],
        capture_output=True,
        check=True,
    ).stdout
    assert runs[0].stdout.split()[0] == hashlib.sha256(deployment_der).hexdigest()
    assert "Signature Verified Successfully" in runs[1].stdout
    assert "Signature Verified Successfully" in runs[2].stdout
    assert "request.pdf: OK" in runs[3].stdout.splitlines()
    manifest = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
    assert (manifest["kind"], manifest["practice_id"], manifest["client_id"]) == (
        "request",
        "PR0001",
        client,
    )
    assert manifest["request"]["claims"] == claims
    assert manifest["request"]["reference"] == REFERENCE
    assert {
        d["record_id"] for d in manifest["request"]["documents"] if d["table"] == "claims"
    } == set(claims)
    if shutil.which("pdftotext") and shutil.which("pdftoppm"):
        letter = subprocess.run(
            ["pdftotext", "-f", "1", "-l", "1", str(folder / "request.pdf"), "-"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        assert REFERENCE in " ".join(letter.split())
        # The letter, the index and the first document as a person sees them (kept in
        # build/e2e to look at), none of them blank.
        import matplotlib.image

        for old in e2e_artifacts_dir.glob("records-request-page*.png"):
            old.unlink()
        subprocess.run(
            [
                "pdftoppm",
                "-png",
                "-r",
                "50",
                "-f",
                "1",
                "-l",
                "3",
                str(folder / "request.pdf"),
                str(e2e_artifacts_dir / "records-request-page"),
            ],
            check=True,
        )
        images = sorted(e2e_artifacts_dir.glob("records-request-page*.png"))
        assert len(images) == 3
        for image in images:
            pixels = matplotlib.image.imread(str(image))
            body = pixels[..., :3].mean(axis=2)[: int(pixels.shape[0] * 0.85)]
            assert (body < 0.5).mean() > 0.001, image.name

    # Tampered: a document changed fails sha256sum; the manifest changed fails its signature.
    changed = tmp_path / "changed"
    shutil.copytree(folder, changed)
    pdf = changed / "request.pdf"
    pdf.write_bytes(pdf.read_bytes() + b"\n% altered\n")
    check = _run(commands[3], changed)
    assert check.returncode != 0 and "request.pdf: FAILED" in check.stdout
    listed = changed / "manifest.json"
    listed.write_text(listed.read_text(encoding="utf-8").replace(claims[0], claims[0] + "X"))
    signature = _run(commands[1], changed)
    assert signature.returncode != 0
    assert "Signature Verified Successfully" not in signature.stdout

    # The admin's download trail names who asked and the request's reference.
    trail = admin_context.new_page()
    try:
        trail.goto(metaudit_server.url("/metaudit/downloads?practice_id=PR0001"))
        row = trail.locator("table#downloads tr.download", has_text=REFERENCE)
        assert row.count() == 1, trail.content()[:2000]
        assert row.locator("td.user").inner_text().strip() == "owner1"
        assert row.locator("td.client").inner_text().strip() == client
    finally:
        trail.close()
