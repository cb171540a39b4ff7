"""The deployment's Ed25519 key pair: what lets an auditor check a packet without any secret.

The HMAC of the manifest (:mod:`metaudit.packets.signing`) proves a packet only to
whoever holds the deployment's secret. Besides it, the manifest is signed with an
Ed25519 private key (PEM, PKCS#8: ``openssl genpkey -algorithm ed25519``) from the
``met_packet_signing_key`` connection or ``METAUDIT_PACKET_SIGNING_KEY``; the packet
carries the public key, and anybody with OpenSSL 3 can check the signature.

A public key is known by its fingerprint, the SHA-256 of its DER encoding (what
``openssl pkey -pubin -outform DER | sha256sum`` prints), shown in groups of four hex
digits; its key id is the fingerprint's first 16 hex digits. After a rotation the
earlier public keys are listed in ``METAUDIT_PACKET_PUBLIC_KEYS`` and a verifier
picks the key by the id the manifest names.

The demo signs with a published key (below), refused outside the demo.
"""

from __future__ import annotations

import functools
import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING

from metaudit import config
from metaudit.packets.errors import PacketKeyError

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import (
        Ed25519PrivateKey,
        Ed25519PublicKey,
    )

SIGNING_KEY_ENV = config.PACKET_SIGNING_KEY_ENV
PUBLIC_KEYS_ENV = config.PACKET_PUBLIC_KEYS_ENV
SIGNATURE_SIZE = 64
# Published on purpose, like the demo HMAC key: NOT SECRET. The demo's packets carry a
# signature anybody can make with it; outside the demo it is refused for signing and
# its signatures count for nothing.
DEMO_SIGNING_KEY_PEM = """-----BEGIN PRIVATE KEY-----
MC4CAQAwBQYDK2VwBCIEIPT1XGZcxx5J+ld2PN8gYtjc8oNbXKGdiYB9R4M0TLYB
-----END PRIVATE KEY-----
"""
_PEM_BLOCK = re.compile(r"-----BEGIN ([A-Z0-9 ]+)-----\s.*?-----END \1-----", re.DOTALL)
_GENERATE = "openssl genpkey -algorithm ed25519 -out packet-signing-key.pem"


@dataclass(frozen=True)
class PublicKey:
    """An Ed25519 public key as a verifier knows it."""

    key: Ed25519PublicKey

    @cached_property
    def der(self) -> bytes:
        from cryptography.hazmat.primitives import serialization

        return self.key.public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )

    @cached_property
    def pem(self) -> bytes:
        from cryptography.hazmat.primitives import serialization

        return self.key.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )

    @cached_property
    def fingerprint(self) -> str:
        """The SHA-256 of the DER public key, hex (as ``sha256sum`` prints it)."""
        return hashlib.sha256(self.der).hexdigest()

    @property
    def grouped_fingerprint(self) -> str:
        """The fingerprint in groups of four hex digits, for reading aloud and comparing."""
        return grouped(self.fingerprint)

    @property
    def key_id(self) -> str:
        return self.fingerprint[:16]

    @property
    def is_demo(self) -> bool:
        return self.fingerprint == demo_signing_key().public.fingerprint

    def verifies(self, signature: bytes, data: bytes) -> bool:
        """Whether ``signature`` is this key's Ed25519 signature of ``data``."""
        from cryptography.exceptions import InvalidSignature

        try:
            self.key.verify(signature, data)
        except InvalidSignature:
            return False
        return True


@dataclass(frozen=True)
class SigningKey:
    """The deployment's Ed25519 private key, and whether it is the published demo key."""

    private: Ed25519PrivateKey
    demo: bool = False

    @cached_property
    def public(self) -> PublicKey:
        return PublicKey(self.private.public_key())

    def sign(self, data: bytes) -> bytes:
        return self.private.sign(data)


def grouped(fingerprint: str) -> str:
    """``ab12cd34...`` as ``ab12 cd34 ...``."""
    return " ".join(fingerprint[i : i + 4] for i in range(0, len(fingerprint), 4))


def _pem_text(text: str | bytes) -> str:
    raw = text.decode("utf-8", "replace") if isinstance(text, bytes) else text
    # A single-line field (an Airflow connection's password) may hold the PEM with
    # literal "\n" for its line breaks.
    return raw.replace("\\n", "\n").strip()


def load_signing_key(text: str | bytes, *, where: str) -> Ed25519PrivateKey:
    """The Ed25519 private key of a PEM text (``where`` names its origin in errors)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    try:
        key = serialization.load_pem_private_key(_pem_text(text).encode("utf-8"), password=None)
    except (ValueError, TypeError) as exc:
        raise PacketKeyError(
            f"{where} is not an unencrypted PEM private key ({exc}); make one with: {_GENERATE}"
        ) from None
    if not isinstance(key, Ed25519PrivateKey):
        raise PacketKeyError(
            f"{where} is a {type(key).__name__.removeprefix('_')}, not an Ed25519 key; "
            f"make one with: {_GENERATE}"
        )
    return key


def load_public_keys(text: str | bytes, *, where: str) -> list[PublicKey]:
    """Every Ed25519 public key of a text of PEM blocks (a public key each; a private
    key's block gives its public key). Anything else is a PacketKeyError."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import (
        Ed25519PrivateKey,
        Ed25519PublicKey,
    )

    pem = _pem_text(text)
    blocks = [m.group(0) for m in _PEM_BLOCK.finditer(pem)]
    if not blocks:
        raise PacketKeyError(f"{where} holds no PEM block (-----BEGIN PUBLIC KEY----- ...)")
    keys = []
    for number, block in enumerate(blocks, start=1):
        what = f"{where}, PEM block {number}"
        try:
            if "PRIVATE KEY" in block.split("\n", 1)[0]:
                private = serialization.load_pem_private_key(block.encode(), password=None)
                if not isinstance(private, Ed25519PrivateKey):
                    raise PacketKeyError(f"{what} is not an Ed25519 key")
                keys.append(PublicKey(private.public_key()))
                continue
            public = serialization.load_pem_public_key(block.encode())
        except (ValueError, TypeError) as exc:
            raise PacketKeyError(f"{what} is not a readable PEM key ({exc})") from None
        if not isinstance(public, Ed25519PublicKey):
            raise PacketKeyError(f"{what} is not an Ed25519 public key")
        keys.append(PublicKey(public))
    return keys


@functools.cache
def demo_signing_key() -> SigningKey:
    """The published demo key pair (NOT SECRET), parsed once."""
    return SigningKey(load_signing_key(DEMO_SIGNING_KEY_PEM, where="the demo key"), demo=True)


def resolve_signing_key(key: str | bytes | None = None, *, demo: bool = False) -> SigningKey | None:
    """The Ed25519 key that signs packets: ``key`` (the connection's), else
    ``METAUDIT_PACKET_SIGNING_KEY``; with neither, the demo key when ``demo``, else None
    (packets then carry the HMAC only, which no auditor can check without the secret).
    The published demo key is refused outside the demo, however it is given."""
    chosen = key if key else config.packet_signing_key()
    if not chosen:
        return demo_signing_key() if demo else None
    where = f"the packet signing key ({SIGNING_KEY_ENV} or connection {config.PACKET_SIGNING_KEY_CONN_ID})"
    signing = SigningKey(load_signing_key(chosen, where=where))
    if signing.public.is_demo:
        if not demo:
            raise PacketKeyError(
                f"{where} is the published demo key, which proves nothing: make the "
                f"deployment's own ({_GENERATE}); the demo key is accepted only in the demo "
                "(METAUDIT_DEMO=1)"
            )
        return SigningKey(signing.private, demo=True)
    return signing


def configured_public_keys() -> list[PublicKey]:
    """The public keys the deployment trusts: its signing key's (when set in the
    environment) and the earlier ones of ``METAUDIT_PACKET_PUBLIC_KEYS``."""
    keys: list[PublicKey] = []
    current = config.packet_signing_key()
    if current:
        keys.append(PublicKey(load_signing_key(current, where=SIGNING_KEY_ENV).public_key()))
    earlier = config.packet_public_keys()
    if earlier:
        keys.extend(load_public_keys(earlier, where=PUBLIC_KEYS_ENV))
    return keys


def describe_ids(ids: Sequence[str]) -> str:
    """Key ids for a message, sorted; "none" for none."""
    return ", ".join(sorted(ids)) if ids else "none"
