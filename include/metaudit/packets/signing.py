"""The packet manifest and its HMAC-SHA256 signature.

The manifest lists every other file of a packet (path, size, SHA-256) with the
as-of date, the practice and the client. Its signature is an HMAC-SHA256 over
the manifest's canonical JSON without the ``signature`` field: keys sorted,
no blanks, UTF-8. The key is a secret of the deployment: passed in (the DAG
reads it from a connection) or taken from the environment variable
``METAUDIT_PACKET_KEY``. Without one, packets are refused, except in the demo,
which signs with a published key that proves nothing (the manifest says so).
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Mapping
from typing import Any

from metaudit import __version__, config
from metaudit.packets.errors import PacketKeyError

KEY_ENV = config.PACKET_KEY_ENV
MANIFEST_NAME = "manifest.json"
MANIFEST_FORMAT = "metaudit-packet/1"
SIGNATURE_ALGORITHM = "HMAC-SHA256"
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
