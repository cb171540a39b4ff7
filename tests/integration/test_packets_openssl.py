"""An auditor checks a packet with the stock tools VERIFY.txt names, and nothing else.

The packets are built by `metaudit packets` with a key made by `openssl genpkey`; the
test runs exactly the command lines of each packet's VERIFY.txt (`$ ` lines) with the
system's openssl and sha256sum in the unzipped packet: they pass on the packet as
built and fail on a changed file and on a changed manifest.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from builders import AS_OF, clean_records, write_sqlite

OPENSSL = shutil.which("openssl")
SHA256SUM = shutil.which("sha256sum")
BASH = shutil.which("bash")
KEY = "openssl-test-packet-hmac-key-0123"


def _openssl_3() -> bool:
    if OPENSSL is None:
        return False
    out = subprocess.run([OPENSSL, "version"], capture_output=True, text=True).stdout
    return re.match(r"OpenSSL [3-9]\.", out) is not None


pytestmark = pytest.mark.skipif(
    not (_openssl_3() and SHA256SUM and BASH),
    reason="needs OpenSSL 3, sha256sum and bash on PATH",
)


def _commands(verify_txt: str) -> list[str]:
    return [line[2:] for line in verify_txt.splitlines() if line.startswith("$ ")]


def _run(command: str, folder: Path) -> subprocess.CompletedProcess[str]:
    assert BASH is not None
    return subprocess.run(
        [BASH, "-c", command],
        cwd=folder,
        capture_output=True,
        text=True,
        env={"PATH": os.environ["PATH"], "LC_ALL": "C"},
    )


def _unzip(packet: Path, folder: Path) -> Path:
    with zipfile.ZipFile(packet) as archive:
        archive.extractall(folder)
    return folder


@pytest.fixture(scope="module")
def packets(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    tmp = tmp_path_factory.mktemp("openssl")
    private = tmp / "signing.pem"
    # The deployment's key as docs/packets.md tells an admin to make it.
    assert OPENSSL is not None
    subprocess.run(
        [OPENSSL, "genpkey", "-algorithm", "ed25519", "-out", str(private)],
        check=True,
        capture_output=True,
    )
    public = tmp / "public.pem"
    subprocess.run(
        [OPENSSL, "pkey", "-in", str(private), "-pubout", "-out", str(public)],
        check=True,
        capture_output=True,
    )
    db = write_sqlite(clean_records(), tmp / "source.sqlite")
    out = tmp / "packets"
    env = {
        **os.environ,
        "METAUDIT_PACKET_KEY": KEY,
        "METAUDIT_PACKET_SIGNING_KEY": private.read_text(),
        "METAUDIT_DATA_DIR": str(tmp / "data"),
    }
    env.pop("METAUDIT_DEMO", None)
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "metaudit.cli",
            "packets",
            "--source",
            str(db),
            "--as-of",
            AS_OF.isoformat(),
            "--out",
            str(out),
            "--practice",
            "PR-1",
        ],
        env=env,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    client = out / "PR-1" / AS_OF.isoformat() / "CL-1.zip"
    practice = out / "PR-1" / f"practice-{AS_OF:%Y-%m}.zip"
    assert client.is_file() and practice.is_file()
    # The answer to a records request for three claims of the client, signed the same way.
    asked = subprocess.run(
        [
            sys.executable,
            "-m",
            "metaudit.cli",
            "request",
            "--source",
            str(db),
            "--practice",
            "PR-1",
            "--claims",
            "CLM-1,CLM-2,CLM-3",
            "--reference",
            "Payer X audit 123",
            "--as-of",
            AS_OF.isoformat(),
            "--out",
            str(out),
        ],
        env=env,
        capture_output=True,
        text=True,
    )
    assert asked.returncode == 0, asked.stderr
    request = Path(asked.stdout.strip())
    assert request.parent == out / "PR-1" / "requests" and request.is_file()
    return {
        "client": client,
        "practice": practice,
        "request": request,
        "public": public,
        "tmp": tmp,
    }


@pytest.mark.parametrize("which", ["client", "practice", "request"])
def test_the_commands_of_verify_txt_pass_on_the_packet_as_built(packets, which, tmp_path):
    folder = _unzip(packets[which], tmp_path / "unzipped")
    text = (folder / "VERIFY.txt").read_text()
    commands = _commands(text)
    assert [c.split()[:2] for c in commands] == [
        ["openssl", "pkey"],
        ["openssl", "pkeyutl"],
        ["openssl", "pkeyutl"],
        ["sha256sum", "-c"],
    ]
    public_der = subprocess.run(
        [OPENSSL, "pkey", "-pubin", "-in", str(packets["public"]), "-outform", "DER"],
        capture_output=True,
        check=True,
    ).stdout
    fingerprint = hashlib.sha256(public_der).hexdigest()
    runs = [_run(command, folder) for command in commands]
    for command, run in zip(commands, runs, strict=True):
        assert run.returncode == 0, (command, run.stdout, run.stderr)
    # 1: the packet's key is the deployment's, by the fingerprint the auditor was given,
    # which VERIFY.txt and the manifest's key id state too.
    assert runs[0].stdout.split()[0] == fingerprint
    grouped = " ".join(fingerprint[i : i + 4] for i in range(0, 64, 4))
    assert grouped in text
    assert json.loads((folder / "manifest.json").read_text())["ed25519_key_id"] == fingerprint[:16]
    assert "Signature Verified Successfully" in runs[1].stdout
    assert "Signature Verified Successfully" in runs[2].stdout
    listed = runs[3].stdout.splitlines()
    assert listed and all(line.endswith(": OK") for line in listed)
    assert ("request.pdf: OK" if which == "request" else "cover.pdf: OK") in listed


def test_a_changed_request_pdf_or_a_document_added_fails(packets, tmp_path):
    folder = _unzip(packets["request"], tmp_path / "unzipped")
    assert "records request" in (folder / "VERIFY.txt").read_text()
    pdf = folder / "request.pdf"
    # A bookmark's title (outside the compressed streams) renamed: another claim.
    original = pdf.read_bytes()
    assert b"(Claim CLM-3)" in original
    pdf.write_bytes(original.replace(b"(Claim CLM-3)", b"(Claim CLM-9)", 1))
    commands = _commands((folder / "VERIFY.txt").read_text())
    runs = [_run(command, folder) for command in commands]
    assert [run.returncode for run in runs[:3]] == [0, 0, 0]
    assert runs[3].returncode != 0 and "request.pdf: FAILED" in runs[3].stdout
    # The manifest says what was asked: another claim list fails its signature.
    manifest = folder / "manifest.json"
    manifest.write_text(manifest.read_text().replace('"CLM-3"', '"CLM-4"'))
    assert _run(commands[1], folder).returncode != 0


def _public_key_verifies(packets, packet: Path, member: str, tmp_path: Path) -> str:
    """``metaudit verify --public-key`` passes ``packet`` as built (its report is
    returned) and fails it, naming ``member`` altered, once a line is added to that
    member."""
    command = [sys.executable, "-m", "metaudit.cli", "verify", "--public-key"]
    command.append(str(packets["public"]))
    env = _without_packet_keys()
    done = subprocess.run([*command, str(packet)], env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    tampered = tmp_path / packet.name
    with zipfile.ZipFile(packet) as src, zipfile.ZipFile(tampered, "w") as dst:
        for info in src.infolist():
            data = src.read(info)
            dst.writestr(info, data + b"\n" if info.filename == member else data)
    altered = subprocess.run([*command, str(tampered)], env=env, capture_output=True, text=True)
    assert altered.returncode == 1
    assert f"{member}: altered" in altered.stderr
    return done.stdout


def _without_packet_keys() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("METAUDIT_PACKET")}


def test_metaudit_verify_checks_the_request_packet_with_the_public_key(packets, tmp_path):
    report = _public_key_verifies(packets, packets["request"], "records.csv", tmp_path)
    assert "records request" in report and "client CL-1" in report
    # And with the deployment's secret (the HMAC) as well.
    done = subprocess.run(
        [sys.executable, "-m", "metaudit.cli", "verify", str(packets["request"])],
        env={**_without_packet_keys(), "METAUDIT_PACKET_KEY": KEY},
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr


def test_a_changed_file_fails_the_sha256sum_step(packets, tmp_path):
    folder = _unzip(packets["client"], tmp_path / "unzipped")
    findings = folder / "findings.csv"
    findings.write_bytes(findings.read_bytes() + b"\n")
    commands = _commands((folder / "VERIFY.txt").read_text())
    runs = [_run(command, folder) for command in commands]
    # The signatures still hold (the lists are intact); the file does not match them.
    assert [run.returncode for run in runs[:3]] == [0, 0, 0]
    assert runs[3].returncode != 0
    assert "findings.csv: FAILED" in runs[3].stdout


def test_a_changed_manifest_fails_the_signature_step(packets, tmp_path):
    folder = _unzip(packets["client"], tmp_path / "unzipped")
    manifest = folder / "manifest.json"
    manifest.write_text(manifest.read_text().replace('"CL-1"', '"CL-2"'))
    commands = _commands((folder / "VERIFY.txt").read_text())
    run = _run(commands[1], folder)
    assert run.returncode != 0
    assert "Signature Verified Successfully" not in run.stdout
    # A changed list of sums fails its own signature.
    sums = folder / "SHA256SUMS"
    sums.write_text(sums.read_text().replace("findings.csv", "cover.pdf", 1))
    assert _run(commands[2], folder).returncode != 0


def test_metaudit_verify_with_the_public_key_agrees(packets, tmp_path):
    report = _public_key_verifies(packets, packets["client"], "findings.csv", tmp_path)
    assert "HMAC not checked" in report
