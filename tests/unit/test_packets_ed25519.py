"""The Ed25519 signature for auditors: checked without the secret, every tampering named,
keys rotated, the demo key refused outside the demo, old HMAC-only packets still valid."""

from __future__ import annotations

import hashlib
import json
from datetime import date
from pathlib import Path

import pytest
from builders import zip_entries
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from metaudit import config
from metaudit.cli import main
from metaudit.packets import PacketKeyError, verify_packet
from metaudit.packets.archive import zip_bytes
from metaudit.packets.keypair import (
    DEMO_SIGNING_KEY_PEM,
    PublicKey,
    SigningKey,
    demo_signing_key,
    load_public_keys,
    resolve_signing_key,
)
from metaudit.packets.signing import KEY_ENV, sha256sums, sign_packet
from metaudit.pipeline.connections import packet_signing_key

KEY = b"a-deployment-secret-of-some-length"
AS_OF = date(2026, 3, 31)
FILES = {
    "cover.pdf": b"%PDF-1.4 not really a pdf but bytes",
    "findings.csv": b"as_of,practice_id\n2026-03-31,PR-1\n",
    "records/sessions.csv": b"session_id\nS-1\n",
}


def _pem(private: Ed25519PrivateKey) -> str:
    return private.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()


def _signer() -> SigningKey:
    return SigningKey(Ed25519PrivateKey.generate())


def _packet(
    tmp_path: Path, signer: SigningKey | None, name: str = "CL-1.zip", key: bytes = KEY
) -> Path:
    files = sign_packet(
        FILES,
        kind="client",
        as_of="2026-03-31",
        practice_id="PR-1",
        client_id="CL-1",
        key=key,
        signer=signer,
    )
    path = tmp_path / name
    path.write_bytes(zip_bytes(files, AS_OF))
    return path


def _rezip(path: Path, entries: dict[str, bytes]) -> None:
    path.write_bytes(zip_bytes(entries, AS_OF))


@pytest.fixture(autouse=True)
def _no_keys_in_the_environment(monkeypatch):
    for name in (KEY_ENV, config.PACKET_SIGNING_KEY_ENV, config.PACKET_PUBLIC_KEYS_ENV):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.delenv(config.DEMO_ENV, raising=False)


def test_the_packet_carries_its_public_key_sums_and_detached_signatures(tmp_path):
    signer = _signer()
    entries = zip_entries(_packet(tmp_path, signer))
    manifest = json.loads(entries["manifest.json"])
    listed = {row["path"] for row in manifest["files"]}
    # Everything but the manifest and the signatures of it and of the sums is listed.
    assert listed == set(entries) - {"manifest.json", "manifest.sig", "SHA256SUMS.sig"}
    assert {"public_key.pem", "VERIFY.txt", "SHA256SUMS"} <= listed
    assert manifest["ed25519_key_id"] == signer.public.key_id
    assert manifest["signature_algorithm"] == "HMAC-SHA256"  # the contract's HMAC stays
    public = load_public_keys(entries["public_key.pem"], where="test")[0]
    assert public.der == signer.public.der
    assert public.verifies(entries["manifest.sig"], entries["manifest.json"])
    assert public.verifies(entries["SHA256SUMS.sig"], entries["SHA256SUMS"])
    # SHA256SUMS is the manifest's list in sha256sum's format, without itself.
    assert entries["SHA256SUMS"] == sha256sums(manifest["files"])
    lines = entries["SHA256SUMS"].decode().splitlines()
    assert len(lines) == len(listed) - 1
    for line in lines:
        digest, path = line.split("  ", 1)
        assert hashlib.sha256(entries[path]).hexdigest() == digest
    # The fingerprint is the SHA-256 of the DER key; the key id its first 16 hex digits.
    assert public.fingerprint == hashlib.sha256(public.der).hexdigest()
    assert public.key_id == public.fingerprint[:16]
    verify = entries["VERIFY.txt"].decode()
    assert public.grouped_fingerprint in verify and public.key_id in verify


def test_it_verifies_with_the_hmac_key_and_with_the_public_key_alone(tmp_path):
    signer = _signer()
    path = _packet(tmp_path, signer)
    with_secret = verify_packet(path, KEY)
    assert with_secret.intact, with_secret.problems
    assert with_secret.ed25519_key_id == signer.public.key_id and with_secret.hmac_checked
    assert with_secret.files_checked == len(FILES) + 3
    by_key = verify_packet(path, public_keys=[signer.public])
    assert by_key.intact, by_key.problems
    assert by_key.ed25519_key_id == signer.public.key_id and not by_key.hmac_checked
    assert "HMAC not checked" in by_key.summary()
    assert "Ed25519 signature valid" in by_key.summary()


def test_a_changed_file_is_named_without_the_secret(tmp_path):
    signer = _signer()
    path = _packet(tmp_path, signer)
    entries = zip_entries(path)
    entries["records/sessions.csv"] = b"session_id\nS-2\n"
    _rezip(path, entries)
    assert verify_packet(path, public_keys=[signer.public]).problems == [
        "records/sessions.csv: altered (SHA-256 differs from the manifest)"
    ]


def test_a_changed_manifest_fails_the_ed25519_signature_and_nothing_is_trusted(tmp_path):
    signer = _signer()
    path = _packet(tmp_path, signer)
    entries = zip_entries(path)
    manifest = json.loads(entries["manifest.json"])
    manifest["client_id"] = "CL-9"
    entries["manifest.json"] = json.dumps(manifest, indent=2).encode()
    _rezip(path, entries)
    problems = verify_packet(path, public_keys=[signer.public]).problems
    assert problems == [
        f"manifest.json: the Ed25519 signature (manifest.sig) does not match key "
        f"{signer.public.key_id} (the manifest or its signature was altered)"
    ]
    # With the secret the HMAC catches it first.
    assert "signature does not match" in verify_packet(path, KEY).problems[0]


def test_a_packet_re_signed_with_another_key_names_the_unknown_key(tmp_path):
    ours, theirs = _signer(), _signer()
    # Whoever rewrites a packet can sign it with a key of theirs and put that key in.
    path = _packet(tmp_path, theirs, key=b"their-own-hmac-secret-000")
    problems = verify_packet(path, public_keys=[ours.public]).problems
    assert len(problems) == 1
    assert f"signed with Ed25519 key {theirs.public.key_id}" in problems[0]
    assert f"key ids {ours.public.key_id}" in problems[0]


def test_a_replaced_public_key_or_missing_signature_is_named(tmp_path):
    signer, other = _signer(), _signer()
    path = _packet(tmp_path, signer)
    entries = zip_entries(path)
    entries["public_key.pem"] = other.public.pem
    _rezip(path, entries)
    problems = verify_packet(path, public_keys=[signer.public]).problems
    assert f"public_key.pem: not the key {signer.public.key_id} the manifest names (replaced)" in (
        problems
    )
    assert "public_key.pem: altered (SHA-256 differs from the manifest)" in problems
    # With the secret, the packet's own key must be the one the manifest names.
    assert verify_packet(path, KEY).problems[0] == (
        f"public_key.pem: holds key {other.public.key_id}, but the manifest names "
        f"{signer.public.key_id}"
    )
    entries = zip_entries(_packet(tmp_path, signer))
    del entries["manifest.sig"]
    _rezip(path, entries)
    assert verify_packet(path, public_keys=[signer.public]).problems == ["manifest.sig: missing"]


def test_altered_sums_are_caught_by_their_signature_and_the_manifest(tmp_path):
    signer = _signer()
    path = _packet(tmp_path, signer)
    entries = zip_entries(path)
    entries["SHA256SUMS"] = entries["SHA256SUMS"].replace(b"cover.pdf", b"cover.PDF")
    _rezip(path, entries)
    problems = verify_packet(path, public_keys=[signer.public]).problems
    assert problems == [
        f"SHA256SUMS: the Ed25519 signature (SHA256SUMS.sig) does not match key "
        f"{signer.public.key_id} (the list or its signature was altered)",
        "SHA256SUMS: does not list exactly the manifest's files and SHA-256",
        "SHA256SUMS: altered (SHA-256 differs from the manifest)",
    ]


def test_an_old_hmac_only_packet_verifies_with_the_secret_only(tmp_path):
    path = _packet(tmp_path, None)
    assert "public_key.pem" not in zip_entries(path)
    check = verify_packet(path, KEY)
    assert check.intact and check.ed25519_key_id is None
    problems = verify_packet(path, public_keys=[_signer().public]).problems
    assert len(problems) == 1 and "names no Ed25519 key" in problems[0]
    assert "METAUDIT_PACKET_KEY" in problems[0]
    # A signature file the manifest knows nothing of is an added file.
    entries = zip_entries(path)
    entries["manifest.sig"] = b"\0" * 64
    _rezip(path, entries)
    assert verify_packet(path, KEY).problems == ["manifest.sig: added (not in the manifest)"]


def test_after_a_rotation_the_earlier_key_verifies_the_earlier_packets(
    tmp_path, monkeypatch, capsys
):
    old, new = _signer(), _signer()
    old_packet = _packet(tmp_path, old, "old.zip")
    new_packet = _packet(tmp_path, new, "new.zip")
    key_file = tmp_path / "new.pem"
    key_file.write_bytes(new.public.pem)
    assert main(["verify", str(new_packet), "--public-key", str(key_file)]) == 0
    assert main(["verify", str(old_packet), "--public-key", str(key_file)]) == 1
    err = capsys.readouterr().err
    assert f"signed with Ed25519 key {old.public.key_id}" in err
    assert "METAUDIT_PACKET_PUBLIC_KEYS" in err
    # The deployment lists its earlier public keys; verify picks the one the manifest names.
    monkeypatch.setenv(config.PACKET_PUBLIC_KEYS_ENV, (old.public.pem + b"\n").decode())
    assert main(["verify", str(old_packet), "--public-key", str(key_file)]) == 0
    assert f"Ed25519 signature valid (key {old.public.key_id})" in capsys.readouterr().out
    # A file of several keys is a keyring too.
    ring = tmp_path / "ring.pem"
    ring.write_bytes(new.public.pem + old.public.pem)
    monkeypatch.delenv(config.PACKET_PUBLIC_KEYS_ENV)
    assert main(["verify", str(old_packet), "--public-key", str(ring)]) == 0


def test_the_cli_names_an_unreadable_or_wrong_kind_of_key(tmp_path, capsys):
    path = _packet(tmp_path, _signer())
    missing = tmp_path / "nope.pem"
    assert main(["verify", str(path), "--public-key", str(missing)]) == 2
    assert "cannot read the public key file" in capsys.readouterr().err
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("not a key")
    assert main(["verify", str(path), "--public-key", str(garbage)]) == 2
    assert "holds no PEM block" in capsys.readouterr().err
    rsa_file = tmp_path / "rsa.pem"
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    rsa_file.write_bytes(
        rsa_key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    assert main(["verify", str(path), "--public-key", str(rsa_file)]) == 2
    assert "is not an Ed25519 public key" in capsys.readouterr().err


def test_the_signing_key_comes_from_the_connection_or_the_environment(monkeypatch):
    private = Ed25519PrivateKey.generate()
    pem = _pem(private)
    assert resolve_signing_key(None) is None  # no key: the HMAC alone
    monkeypatch.setenv(config.PACKET_SIGNING_KEY_ENV, pem)
    from_env = resolve_signing_key(None)
    assert from_env is not None and not from_env.demo
    assert from_env.public.der == PublicKey(private.public_key()).der
    # A connection's single-line password may hold the PEM with literal \n.
    other = Ed25519PrivateKey.generate()

    class Conn:
        password = _pem(other).replace("\n", "\\n")

    given = packet_signing_key(lookup=lambda conn_id: Conn())
    chosen = resolve_signing_key(given)
    assert chosen is not None and chosen.public.der == PublicKey(other.public_key()).der
    assert packet_signing_key(lookup=lambda conn_id: None) is None
    with pytest.raises(PacketKeyError, match="not an unencrypted PEM private key"):
        resolve_signing_key("-----BEGIN PRIVATE KEY-----\nbroken\n-----END PRIVATE KEY-----")
    rsa_pem = (
        rsa.generate_private_key(public_exponent=65537, key_size=2048)
        .private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        .decode()
    )
    with pytest.raises(PacketKeyError, match="not an Ed25519 key; make one with: openssl genpkey"):
        resolve_signing_key(rsa_pem)


def test_the_published_demo_key_signs_only_in_the_demo(tmp_path, monkeypatch):
    assert resolve_signing_key(None, demo=True) == demo_signing_key()
    assert demo_signing_key().demo and demo_signing_key().public.is_demo
    with pytest.raises(PacketKeyError, match="published demo key"):
        resolve_signing_key(DEMO_SIGNING_KEY_PEM)
    monkeypatch.setenv(config.PACKET_SIGNING_KEY_ENV, DEMO_SIGNING_KEY_PEM)
    with pytest.raises(PacketKeyError, match="accepted only in the demo"):
        resolve_signing_key(None)
    signer = resolve_signing_key(None, demo=True)
    assert signer is not None and signer.demo
    path = _packet(tmp_path, signer)
    assert "DEMO PACKET" in zip_entries(path)["VERIFY.txt"].decode()
    # Its signature holds, and proves nothing: it counts only in the demo.
    outside = verify_packet(path, public_keys=[signer.public], demo=False)
    assert outside.demo_key and len(outside.problems) == 1
    assert "published demo key" in outside.problems[0]
    inside = verify_packet(path, public_keys=[signer.public], demo=True)
    assert inside.intact and inside.demo_key
