"""The evidence digest of a client packet: what the packet proves, hashed.

A client's packet is rebuilt only when what it proves changed. That is

- the client's records in the as-of view (``PracticeMaterial.records``: its
  rows of every contract table, and the staff and providers they name);
- the client's findings (without their ``as_of`` field, which changes nightly);
- the rulebook, the Great Expectations suites and the settings that judged
  them, the packet's audit period (``packets.activity_days``);
- the signing keys (the HMAC key by its public fingerprint, never the key itself;
  the Ed25519 key by its key id, or its absence);
- the packet format and the code version that renders it.

Deciding costs no rendering and no reading of old packets: one vectorised
row hash per table and practice (pandas' SipHash, keyed with a secret derived
from the signing key, so that nobody without the key can craft an edit that
hashes like the original), then per client a SHA-256 over its rows' hashes
and the rest.

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
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from metaudit import __version__
from metaudit.packets.signing import MANIFEST_FORMAT, key_id
from metaudit.spec import rulebook

if TYPE_CHECKING:
    import pandas as pd

    from metaudit.packets.content import SuiteRef
    from metaudit.packets.keypair import SigningKey
    from metaudit.spec.findings import Finding
    from metaudit.spec.settings import Settings

# Bump when the same evidence gives a different packet (the renderers changed what
# they write): every packet is then rebuilt once on the next night. 2: records.pdf,
# the cover embeds every font it uses, and the Ed25519 signature for auditors
# (VERIFY.txt, the key's fingerprint on the cover).
EVIDENCE_FORMAT = "metaudit-evidence/2"


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
    reference: str = "",
    signer: SigningKey | None = None,
) -> str:
    """The digest of everything a practice's client packets share: rulebook, suites,
    the settings that judge the practice, the keys' fingerprints, the formats, and the
    ``reference`` tables' digest (:attr:`RecordHashes.reference`). Computed once per
    practice and night."""
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
        # A new or rotated Ed25519 key, or one added to a deployment that had none,
        # rebuilds every packet once: each names its key and carries its public key.
        "ed25519_key_id": signer.public.key_id if signer is not None else None,
        "activity_days": activity_days,
        "reference": reference,
    }
    return hashlib.sha256(_canonical(context)).hexdigest()


def _row_hash_key(key: bytes) -> str:
    """pandas' row hash takes a 16-character key: 12 secret bytes derived from the
    signing key, base64 (the row hashes are never stored, only their SHA-256)."""
    secret = hmac.new(key, b"metaudit-records-digest", hashlib.sha256).digest()[:12]
    return base64.urlsafe_b64encode(secret).decode("ascii")


# Practice-wide tables a client's packet quotes from (the staff and providers its records
# name, the practice's own row): they go into the practice context, so a change rebuilds
# the practice's packets but does not restart the clients' "records unchanged since".
REFERENCE_TABLES = ("practices", "providers", "staff")


class RecordHashes:
    """Each client's records digest, from one vectorised pass over the practice's tables.

    Every row of every table with a ``client_id`` (the client's records, as
    ``PracticeMaterial.records`` takes them) is hashed once per practice (keyed
    64-bit SipHash); a client's digest is the SHA-256 over, per table, its name,
    columns and types, and its rows' hashes sorted (the rows as a set: the packet
    sorts them itself). A client costs a few array takes, not a frame per table.

    ``clients``: hash only those clients' rows (the clients a night packs, a quarter of
    the practice's or fewer); a row's hash does not depend on the other rows, so their
    digests are the same. Another client's digest is hashed from its own rows when asked.

    ``known``: clients' digests already known for these very tables (an earlier night's,
    when its records were these: :attr:`metaudit.packets.inforce.InForce.source`), and
    ``reference`` the reference tables' digest then; only the other clients' rows are
    hashed, and with ``reference`` the reference tables are not.
    """

    def __init__(
        self,
        tables: Mapping[str, pd.DataFrame],
        key: bytes,
        clients: Iterable[str] | None = None,
        *,
        known: Mapping[str, str] | None = None,
        reference: str | None = None,
    ) -> None:
        import numpy as np

        from metaudit.source.rows import positions_by

        self._hash_key = _row_hash_key(key)
        self._empty = np.array([], dtype=np.intp)
        self._known = dict(known or {})
        self._clients = None if clients is None else {str(c) for c in clients}
        if self._clients is not None:
            self._clients -= set(self._known)
        self._tables: list[tuple[bytes, Any, dict[str, Any], pd.DataFrame]] = []
        digest = hashlib.sha256(b"metaudit-reference/1")
        for name in sorted(tables):
            frame = tables[name]
            header = _canonical([name, [[str(c), str(t)] for c, t in frame.dtypes.items()]])
            if name in REFERENCE_TABLES:
                if reference is None:
                    digest.update(header)
                    digest.update(np.sort(self._hashes(frame)).tobytes())
                continue
            if "client_id" not in frame.columns:
                continue
            rows = frame
            if self._clients is not None and len(frame):
                if not self._clients:
                    rows = frame.iloc[:0]
                else:
                    keep = frame["client_id"].astype("string").isin(self._clients)
                    rows = frame[keep.fillna(False).to_numpy(bool)]
            self._tables.append(
                (header, self._hashes(rows), positions_by(rows, "client_id"), frame)
            )
        self.reference = digest.hexdigest() if reference is None else reference

    def _hashes(self, frame: pd.DataFrame) -> Any:
        import numpy as np
        from pandas.util import hash_pandas_object

        if not len(frame) or not len(frame.columns):
            return np.array([], dtype="uint64")
        return hash_pandas_object(frame, index=False, hash_key=self._hash_key).to_numpy(
            dtype="uint64"
        )

    def client(self, client_id: str) -> str:
        """The digest of the client's records."""
        import numpy as np

        if client_id in self._known:
            return self._known[client_id]
        digest = hashlib.sha256(b"metaudit-records/1")
        covered = self._clients is None or client_id in self._clients
        for header, hashes, groups, frame in self._tables:
            if covered:
                rows = hashes[groups.get(client_id, self._empty)]
            else:
                own = frame["client_id"].astype("string").eq(client_id)
                rows = self._hashes(frame[own.fillna(False).to_numpy(bool)])
            rows = np.sort(rows)
            digest.update(header)
            digest.update(len(rows).to_bytes(8, "little"))
            digest.update(rows.tobytes())
        return digest.hexdigest()


def client_evidence(
    records: str,
    findings: Sequence[Finding],
    context: str,
    acceptances: Sequence[Mapping[str, Any]] = (),
) -> ClientEvidence:
    """The client's evidence digest from its records digest (:class:`RecordHashes`), its
    findings (sorted, as the packet lists them), their acceptances as the packet lists
    them (an acceptance given or withdrawn changes the packet) and the practice's
    ``context``."""
    rows = []
    for finding in findings:
        row = finding.to_dict()
        row.pop("as_of", None)
        rows.append(row)
    whole: dict[str, Any] = {"context": context, "records": records, "findings": rows}
    if acceptances:
        # Only when there are some: a client without any keeps the digest it had before.
        whole["acceptances"] = [dict(a) for a in acceptances]
    return ClientEvidence(digest=hashlib.sha256(_canonical(whole)).hexdigest(), records=records)
