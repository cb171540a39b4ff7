"""The evidence digest of a client packet: what the packet proves, hashed.

A client's packet is rebuilt only when what it proves changed. That is

- the client's records in the as-of view (``PracticeMaterial.records``: its
  rows of every contract table, and the staff and providers they name);
- the client's findings (without their ``as_of`` field, which changes nightly);
- the rulebook, the Great Expectations suites and the settings that judged
  them, the packet's audit period (``packets.activity_days``);
- the signing key (by its public fingerprint, never the key itself);
- the packet format and the code version that renders it.

Deciding costs no rendering and no reading of old packets: one vectorised
row hash per client table (pandas' SipHash, keyed with a secret derived from
the signing key, so that nobody without the key can craft an edit that hashes
like the original) and a SHA-256 over those hashes and the rest.

Not covered, on purpose: the practice-level counts a client packet quotes
next to the client's own (``practice_result`` in the validation report), and
rule statuses that change only by the passing of days (a rule becoming not
applicable with no record and no finding changing). A packet in force states
those as of the date it was built; ``rebuild_packets`` rebuilds anyway.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from metaudit import __version__
from metaudit.packets.signing import MANIFEST_FORMAT, key_id
from metaudit.spec import rulebook

if TYPE_CHECKING:
    import pandas as pd

    from metaudit.packets.content import SuiteRef
    from metaudit.spec.findings import Finding
    from metaudit.spec.settings import Settings

# Bump when the same evidence gives a different packet (the renderers changed what
# they write): every packet is then rebuilt once on the next night.
EVIDENCE_FORMAT = "metaudit-evidence/1"


@dataclass(frozen=True)
class ClientEvidence:
    """A client's evidence digest, and the digest of its records alone (the cover's
    "records unchanged since" follows the records, not the findings or the settings)."""

    digest: str
    records: str


def _canonical(value: Any) -> bytes:
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str
    ).encode("utf-8")


def practice_context(
    settings: Settings | None,
    practice_id: str,
    suites: Sequence[SuiteRef],
    *,
    key: bytes,
    demo_key: bool,
    activity_days: int,
) -> str:
    """The digest of everything a practice's client packets share: rulebook, suites,
    the settings that judge the practice, the key's fingerprint, the formats.
    Computed once per practice and night."""
    suite_part = [
        {
            "family": suite.family,
            "frame": suite.frame,
            "entity_type": suite.entity_type,
            "suite_name": suite.suite_name,
            "gx_version": suite.gx_version,
            "expectations": [
                {
                    "type": ref.config.get("type"),
                    "kwargs": {
                        k: v
                        for k, v in (ref.config.get("kwargs", {}) or {}).items()
                        if k != "batch_id"
                    },
                    "meta": ref.config.get("meta", {}),
                }
                for ref in suite.expectations
            ],
        }
        for suite in suites
    ]
    context = {
        "evidence_format": EVIDENCE_FORMAT,
        "manifest_format": MANIFEST_FORMAT,
        "version": __version__,
        "rules": [asdict(rule) for rule in rulebook.RULES.values()],
        "settings": settings.judging(practice_id) if settings is not None else None,
        "suites": suite_part,
        "key_id": key_id(key),
        "demo_key": demo_key,
        "activity_days": activity_days,
    }
    return hashlib.sha256(_canonical(context)).hexdigest()


def _row_hash_key(key: bytes) -> str:
    """pandas' row hash takes a 16-character key: 12 secret bytes derived from the
    signing key, base64 (the row hashes are never stored, only their SHA-256)."""
    secret = hmac.new(key, b"metaudit-records-digest", hashlib.sha256).digest()[:12]
    return base64.urlsafe_b64encode(secret).decode("ascii")


def records_digest(records: Mapping[str, pd.DataFrame], key: bytes) -> str:
    """SHA-256 over the client's tables: name, columns and types, then each row's keyed
    64-bit hash in the order the packet shows the rows."""
    from pandas.util import hash_pandas_object

    hash_key = _row_hash_key(key)
    digest = hashlib.sha256(b"metaudit-records/1")
    for name in sorted(records):
        frame = records[name]
        header = [name, len(frame), [[str(c), str(t)] for c, t in frame.dtypes.items()]]
        digest.update(_canonical(header))
        if len(frame) and len(frame.columns):
            rows = hash_pandas_object(frame, index=False, hash_key=hash_key)
            digest.update(rows.to_numpy(dtype="uint64").tobytes())
    return digest.hexdigest()


def client_evidence(
    records: Mapping[str, pd.DataFrame],
    findings: Sequence[Finding],
    context: str,
    key: bytes,
) -> ClientEvidence:
    """The client's evidence digest from its records (``PracticeMaterial.records``), its
    findings (sorted, as the packet lists them) and the practice's ``context``."""
    records_part = records_digest(records, key)
    rows = []
    for finding in findings:
        row = finding.to_dict()
        row.pop("as_of", None)
        rows.append(row)
    whole = {"context": context, "records": records_part, "findings": rows}
    return ClientEvidence(
        digest=hashlib.sha256(_canonical(whole)).hexdigest(), records=records_part
    )
