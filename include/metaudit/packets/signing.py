"""The packet manifest and its HMAC-SHA256 signature.

The manifest lists every other file of a packet (path, size, SHA-256) with the
as-of date, the practice and the client. Its signature is an HMAC-SHA256 over
the manifest's canonical JSON without the ``signature`` field: keys sorted,
no blanks, UTF-8. The key is a secret of the deployment: passed in (the DAG
reads it from a connection) or taken from the environment variable
``METAUDIT_PACKET_KEY``. Without one, packets are refused, except in the demo,
which signs with a published key that proves nothing (the manifest says so).

Besides the HMAC, a packet is signed for auditors, who hold no secret
(:func:`sign_packet`, with the deployment's Ed25519 key of
:mod:`metaudit.packets.keypair`). The chain an auditor follows with stock tools:

    the key's fingerprint, got from the practice  ->  public_key.pem
    manifest.sig      Ed25519 over manifest.json's bytes: the as-of date, practice,
                      client, and every listed file's path, size and SHA-256
    SHA256SUMS.sig    Ed25519 over SHA256SUMS: the same files and hashes in
                      sha256sum's format (listed in the manifest too)
    sha256sum -c      each file against SHA256SUMS

The two ``.sig`` files are the only ones the manifest cannot list (each signs what
lists it). ``VERIFY.txt`` gives the commands (``verify_text``); ``metaudit verify``
checks that SHA256SUMS is exactly the manifest's list.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from metaudit import __version__, config
from metaudit.packets.errors import PacketKeyError

if TYPE_CHECKING:
    from metaudit.packets.keypair import SigningKey

KEY_ENV = config.PACKET_KEY_ENV
MANIFEST_NAME = "manifest.json"
MANIFEST_FORMAT = "metaudit-packet/1"
SIGNATURE_ALGORITHM = "HMAC-SHA256"
# The auditor's files (with an Ed25519 key): listed in the manifest...
PUBLIC_KEY_NAME = "public_key.pem"
VERIFY_NAME = "VERIFY.txt"
SUMS_NAME = "SHA256SUMS"
# ... and the detached signatures, which it cannot list.
MANIFEST_SIGNATURE_NAME = "manifest.sig"
SUMS_SIGNATURE_NAME = "SHA256SUMS.sig"
DETACHED_SIGNATURES = (MANIFEST_SIGNATURE_NAME, SUMS_SIGNATURE_NAME)
AUDITOR_FILES = (PUBLIC_KEY_NAME, VERIFY_NAME, SUMS_NAME, *DETACHED_SIGNATURES)
# The manifest field naming the Ed25519 key (absent in packets signed with the HMAC only).
ED25519_KEY_ID = "ed25519_key_id"
CREATED_BY = f"metaudit {__version__}"
# Short keys can be guessed offline from any signed manifest.
MIN_KEY_LENGTH = 16
# Published on purpose: the demo must run without a secret, and a packet signed
# with this key carries "demo_key": true so nobody mistakes it for proof.
DEMO_PACKET_KEY = b"metaudit-demo-packet-key-not-secret"


def resolve_key(key: bytes | str | None = None, *, demo: bool = False) -> tuple[bytes, bool]:
    """The signing key and whether it is the demo key.

    An explicit ``key`` wins, then ``METAUDIT_PACKET_KEY``; with neither, the
    demo key when ``demo`` is set, else PacketKeyError. The published demo key is
    refused outside the demo, however it is given: anybody can sign with it.
    """
    chosen: bytes | str | None = key if key else config.packet_key()
    if chosen is None:
        if demo:
            return DEMO_PACKET_KEY, True
        raise PacketKeyError(
            f"no packet signing key: set the environment variable {KEY_ENV} (or the DAG's "
            "packet key connection) to a secret of at least "
            f"{MIN_KEY_LENGTH} characters; only the demo may build packets without one"
        )
    raw = chosen.encode("utf-8") if isinstance(chosen, str) else bytes(chosen)
    if len(raw) < MIN_KEY_LENGTH:
        raise PacketKeyError(
            f"the packet signing key is {len(raw)} bytes long; use at least {MIN_KEY_LENGTH}"
        )
    if raw == DEMO_PACKET_KEY and not demo:
        raise PacketKeyError(
            f"the packet signing key is the published demo key, which proves nothing: set "
            f"{KEY_ENV} (or the DAG's packet key connection) to the deployment's own secret; "
            "the demo key is accepted only in the demo (METAUDIT_DEMO=1)"
        )
    return raw, raw == DEMO_PACKET_KEY


def verification_key(key: bytes | str | None = None) -> bytes:
    """The key to check a signature with: ``key`` or ``METAUDIT_PACKET_KEY``, else PacketKeyError."""
    chosen: bytes | str | None = key if key else config.packet_key()
    if chosen is None:
        raise PacketKeyError(
            f"no key to check the packet's signature: set the environment variable {KEY_ENV} "
            "to the deployment's packet key"
        )
    return chosen.encode("utf-8") if isinstance(chosen, str) else bytes(chosen)


def key_id(key: bytes) -> str:
    """A short public fingerprint of a key, so a reader can tell "other key" from "altered"."""
    return hashlib.sha256(b"metaudit-packet-key-id:" + key).hexdigest()[:12]


def canonical_json(manifest: Mapping[str, Any]) -> bytes:
    """The bytes that are signed: the manifest without its signature, keys sorted, compact."""
    unsigned = {name: value for name, value in manifest.items() if name != "signature"}
    return json.dumps(
        unsigned, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode("utf-8")


def signature(manifest: Mapping[str, Any], key: bytes) -> str:
    """The hex HMAC-SHA256 of the manifest's canonical JSON."""
    return hmac.new(key, canonical_json(manifest), hashlib.sha256).hexdigest()


def file_entry(path: str, data: bytes) -> dict[str, Any]:
    """One manifest row: path, size in bytes and SHA-256 of a file."""
    return {"path": path, "size": len(data), "sha256": hashlib.sha256(data).hexdigest()}


def build_manifest(
    files: Mapping[str, bytes],
    *,
    kind: str,
    as_of: str,
    practice_id: str,
    client_id: str | None,
    key: bytes,
    demo_key: bool = False,
    extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The signed manifest of a packet whose other files are ``files`` (path -> bytes)."""
    if MANIFEST_NAME in files:
        raise ValueError("the manifest lists the other files; it cannot be one of them")
    manifest: dict[str, Any] = {
        "format": MANIFEST_FORMAT,
        "kind": kind,
        "as_of": as_of,
        "practice_id": practice_id,
        "client_id": client_id,
        "created_by": CREATED_BY,
        "signature_algorithm": SIGNATURE_ALGORITHM,
        "key_id": key_id(key),
        "demo_key": demo_key,
        "files": [file_entry(path, files[path]) for path in sorted(files)],
    }
    if extra:
        clash = set(extra) & set(manifest)
        if clash:
            raise ValueError(f"extra manifest fields clash: {sorted(clash)}")
        manifest.update(extra)
    manifest["signature"] = signature(manifest, key)
    return manifest


def manifest_bytes(manifest: Mapping[str, Any]) -> bytes:
    """The manifest as stored in the packet (readable, stable bytes)."""
    text = json.dumps(manifest, sort_keys=True, indent=2, ensure_ascii=False, allow_nan=False)
    return (text + "\n").encode("utf-8")


def sha256sums(rows: Iterable[Mapping[str, Any]]) -> bytes:
    """``sha256sum``'s check format (``<hex>  <path>``, sorted) for manifest rows, leaving
    out SHA256SUMS itself: what ``sha256sum -c`` reads."""
    lines = [
        f"{row['sha256']}  {row['path']}\n"
        for row in sorted(rows, key=lambda r: str(r["path"]))
        if row["path"] != SUMS_NAME
    ]
    return "".join(lines).encode("utf-8")


def sign_packet(
    files: Mapping[str, bytes],
    *,
    kind: str,
    as_of: str,
    practice_id: str,
    client_id: str | None,
    key: bytes,
    demo_key: bool = False,
    signer: SigningKey | None = None,
    extra: Mapping[str, Any] | None = None,
    what: str | None = None,
) -> dict[str, bytes]:
    """The packet's files with its signed manifest: ``files`` plus ``manifest.json``
    (HMAC-signed, :func:`build_manifest`) and, with an Ed25519 ``signer``, the auditor's
    files (module docstring). ``what``: what VERIFY.txt says the packet is (default: the
    client's or the practice's packet)."""
    clash = sorted(set(files) & {MANIFEST_NAME, *AUDITOR_FILES})
    if clash:
        raise ValueError(f"the packet's own files cannot be among its content: {clash}")
    signed = dict(files)
    fields = dict(extra or {})
    if signer is not None:
        public = signer.public
        fields[ED25519_KEY_ID] = public.key_id
        signed[PUBLIC_KEY_NAME] = public.pem
        what = what or (
            f"client {client_id}'s packet of practice {practice_id} as of {as_of}"
            if client_id is not None
            else f"practice {practice_id}'s packet for {as_of[:7]} (as of {as_of})"
        )
        signed[VERIFY_NAME] = verify_text(what, public.key_id, public.fingerprint, demo=signer.demo)
        signed[SUMS_NAME] = sha256sums(file_entry(p, data) for p, data in signed.items())
    manifest = build_manifest(
        signed,
        kind=kind,
        as_of=as_of,
        practice_id=practice_id,
        client_id=client_id,
        key=key,
        demo_key=demo_key,
        extra=fields,
    )
    signed[MANIFEST_NAME] = manifest_bytes(manifest)
    if signer is not None:
        signed[MANIFEST_SIGNATURE_NAME] = signer.sign(signed[MANIFEST_NAME])
        signed[SUMS_SIGNATURE_NAME] = signer.sign(signed[SUMS_NAME])
    return signed


def verify_text(what: str, key_id: str, fingerprint: str, *, demo: bool = False) -> bytes:
    """VERIFY.txt: how an auditor checks the packet with OpenSSL 3 and sha256sum alone.
    Its command lines start with ``$ `` (the tests run exactly those)."""
    from metaudit.packets.keypair import grouped

    demo_note = (
        "\nDEMO PACKET: signed with the published demo key, which anybody can use.\n"
        "The checks below pass, but they prove nothing about who made the packet.\n"
        if demo
        else ""
    )
    text = f"""How to check this MET audit packet with stock tools
====================================================

This is {what}.
It is signed with the practice's Ed25519 key

    key id       {key_id}
    fingerprint  SHA-256 {grouped(fingerprint)}
{demo_note}
Compare that fingerprint with the one the practice gave you by another way than
this packet (letter, phone, its website): whoever can change the packet can put
another key into it. The signature proves the packet is the practice's only if
the fingerprint is.

You need OpenSSL 3 (`openssl version`; the LibreSSL of macOS cannot check Ed25519)
and sha256sum (GNU coreutils; on macOS `shasum -a 256` does the same). Unzip the
packet into an empty folder, go into it, and run:

1. The public key's fingerprint: it must print the one above (without the blanks).
$ openssl pkey -pubin -in {PUBLIC_KEY_NAME} -outform DER | sha256sum

2. The manifest is signed by that key: it must print "Signature Verified Successfully".
$ openssl pkeyutl -verify -pubin -inkey {PUBLIC_KEY_NAME} -rawin -in {MANIFEST_NAME} -sigfile {MANIFEST_SIGNATURE_NAME}

3. The list of files and their SHA-256 is signed by the same key (same message).
$ openssl pkeyutl -verify -pubin -inkey {PUBLIC_KEY_NAME} -rawin -in {SUMS_NAME} -sigfile {SUMS_SIGNATURE_NAME}

4. Every file is as signed: every line must end in OK.
$ sha256sum -c --strict {SUMS_NAME}

Any other output, or a command that fails, means the packet was altered (or is
not the practice's).

What each step proves
---------------------
The fingerprint ties {PUBLIC_KEY_NAME} to the practice. {MANIFEST_SIGNATURE_NAME} proves
{MANIFEST_NAME}: the practice, the client, the as-of date, and every file's path, size
and SHA-256. {SUMS_SIGNATURE_NAME} proves {SUMS_NAME}, which holds the same files and
hashes in the format sha256sum reads (the manifest lists it as well), and
sha256sum proves each file against it. A file that {SUMS_NAME} does not list
(besides {MANIFEST_NAME} and the two .sig files) is not part of the signed packet.

The manifest's "signature" field is a second signature, an HMAC-SHA256 only the
practice can check (it needs the practice's secret). With MET Audit installed,
`metaudit verify --public-key FILE PACKET.zip` runs all of the above in one step
(FILE: the practice's public key as the practice gave it), and also reports
files added to the zip.
"""
    return text.encode("utf-8")
