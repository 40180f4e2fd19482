"""Offline verification of the monitor's out records (`missionwatch verify`).

Every record's hash must equal the SHA-256 of its canonical bytes, its signature
must verify under a `monitor` key of the keyring, and each mission's records must
form one unbroken chain: seq counting from 0, prev_hash naming the previous hash.
An edited record fails its hash; a deleted or reordered one breaks the chain; a
record re-signed by any key outside the keyring's monitor keys fails its signature.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from .canonical import CanonicalizationError, record_hash
from .records import OUT_SCHEMAS
from .signing import Keyring, VerifyFailure

__all__ = ["Chains", "VerifyReport", "check_out_record", "verify_events"]


@dataclass(frozen=True)
class VerifyReport:
    records: int
    missions: int
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


_WHY = {"signature_missing": "it is not signed",
        "unknown_key": "it is signed by key {}, which is not in the keyring",
        "wrong_role": "{}",
        "unsupported_alg": "it uses algorithm {}",
        "bad_signature": "the signature by {} does not verify"}


def check_out_record(rec: object, keyring: Keyring) -> tuple[str, int, str] | str:
    """One out record on its own: (mission_id, seq, hash) when its hash matches its content and
    its signature verifies under a monitor key of `keyring`; otherwise why not."""
    if not isinstance(rec, dict) or rec.get("schema") not in OUT_SCHEMAS:
        return "not a missionwatch out record"
    mission, seq = rec.get("mission_id"), rec.get("seq")
    where = f"mission {mission!r} seq {seq!r}"
    if not isinstance(mission, str) or not isinstance(seq, int) or isinstance(seq, bool):
        return f"{where}: mission_id or seq is missing"
    try:
        h = record_hash(rec)
    except CanonicalizationError as exc:
        return f"{where}: cannot be canonicalized ({exc})"
    if rec.get("hash") != h:
        return (f"{where}: the hash does not match the content (edited record); "
                f"recorded {rec.get('hash')!r}, computed {h!r}")
    result = keyring.verify(rec, "monitor")
    if isinstance(result, VerifyFailure):
        return f"{where}: {_WHY[result.code].format(result.detail)}"
    return mission, seq, h


@dataclass
class Chains:
    """Each mission's chain head (seq, hash): records must extend it one by one."""

    heads: dict[str, tuple[int, str]] = field(default_factory=dict)

    def extend(self, mission: str, seq: int, h: str, prev_hash: object) -> str | None:
        """Append a checked record; None, or why it does not extend the mission's chain."""
        prev = self.heads.get(mission)
        expected_seq, expected_prev = (0, None) if prev is None else (prev[0] + 1, prev[1])
        where = f"mission {mission!r} seq {seq!r}"
        if seq != expected_seq:
            what = "a record is missing before it" if seq > expected_seq else "it is out of order or repeated"
            return f"{where}: expected seq {expected_seq}; {what}"
        if prev_hash != expected_prev:
            return (f"{where}: prev_hash {prev_hash!r} does not name the previous record's hash "
                    f"{expected_prev!r}; the chain is broken")
        self.heads[mission] = (seq, h)
        return None


def verify_events(path: str | Path, keyring: Keyring) -> VerifyReport:
    chains = Chains()
    n = 0
    with Path(path).open(encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except json.JSONDecodeError as exc:
                return VerifyReport(n, len(chains.heads), f"line {lineno}: not valid JSON ({exc.msg})")
            checked = check_out_record(rec, keyring)
            if isinstance(checked, str):
                return VerifyReport(n, len(chains.heads), f"line {lineno}: {checked}")
            error = chains.extend(*checked, rec.get("prev_hash"))
            if error is not None:
                return VerifyReport(n, len(chains.heads), f"line {lineno}: {error}")
            n += 1
    return VerifyReport(n, len(chains.heads))
