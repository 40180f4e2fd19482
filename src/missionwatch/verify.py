"""Offline verification of the monitor's out records (`missionwatch verify`).

Every record's hash must equal the SHA-256 of its canonical bytes, its signature
must verify under a `monitor` key of the keyring, and each mission's records must
form one unbroken chain: seq counting from 0, prev_hash naming the previous hash.
An edited record fails its hash; a deleted or reordered one breaks the chain; a
record re-signed by any key outside the keyring's monitor keys fails its signature.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from .canonical import CanonicalizationError, record_hash
from .records import OUT_SCHEMAS
from .signing import Keyring, VerifyFailure

__all__ = ["VerifyReport", "verify_events"]


@dataclass(frozen=True)
class VerifyReport:
    records: int
    missions: int
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


def verify_events(path: str | Path, keyring: Keyring) -> VerifyReport:
    chains: dict[str, tuple[int, str]] = {}
    n = 0
    with Path(path).open(encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            where = f"line {lineno}"
            try:
                rec = json.loads(line)
            except json.JSONDecodeError as exc:
                return VerifyReport(n, len(chains), f"{where}: not valid JSON ({exc.msg})")
            if not isinstance(rec, dict) or rec.get("schema") not in OUT_SCHEMAS:
                return VerifyReport(n, len(chains), f"{where}: not a missionwatch out record")
            mission, seq = rec.get("mission_id"), rec.get("seq")
            where = f"{where}: mission {mission!r} seq {seq!r}"
            if not isinstance(mission, str) or not isinstance(seq, int) or isinstance(seq, bool):
                return VerifyReport(n, len(chains), f"{where}: mission_id or seq is missing")
            try:
                h = record_hash(rec)
            except CanonicalizationError as exc:
                return VerifyReport(n, len(chains), f"{where}: cannot be canonicalized ({exc})")
            if rec.get("hash") != h:
                return VerifyReport(n, len(chains),
                                    f"{where}: the hash does not match the content (edited record); "
                                    f"recorded {rec.get('hash')!r}, computed {h!r}")
            result = keyring.verify(rec, "monitor")
            if isinstance(result, VerifyFailure):
                why = {"signature_missing": "it is not signed",
                       "unknown_key": f"it is signed by key {result.detail}, which is not in the keyring",
                       "wrong_role": result.detail,
                       "unsupported_alg": f"it uses algorithm {result.detail}",
                       "bad_signature": f"the signature by {result.detail} does not verify"}[result.code]
                return VerifyReport(n, len(chains), f"{where}: {why}")
            prev = chains.get(mission)
            expected_seq, expected_prev = (0, None) if prev is None else (prev[0] + 1, prev[1])
            if seq != expected_seq:
                what = "a record is missing before it" if seq > expected_seq else "it is out of order or repeated"
                return VerifyReport(n, len(chains), f"{where}: expected seq {expected_seq}; {what}")
            if rec.get("prev_hash") != expected_prev:
                return VerifyReport(n, len(chains),
                                    f"{where}: prev_hash {rec.get('prev_hash')!r} does not name the "
                                    f"previous record's hash {expected_prev!r}; the chain is broken")
            chains[mission] = (seq, h)
            n += 1
    return VerifyReport(n, len(chains))
