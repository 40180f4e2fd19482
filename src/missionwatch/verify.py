"""Offline verification of the monitor's out records (`missionwatch verify`).

Every record's hash must equal the SHA-256 of its canonical bytes, its signature
must verify under a `monitor` key of the keyring, and each mission's records must
form one unbroken chain: seq counting from 0, prev_hash naming the previous hash.
An edited record fails its hash; a deleted or reordered one breaks the chain; a
record re-signed by any key outside the keyring's monitor keys fails its signature.
A file with no out records at all is refused: there is nothing to vouch for.

What a chain cannot show by itself: records cut off the end of a file (the last
records of a mission, say the control signal of a resume) and a mission whose
whole chain was deleted. An expectation closes that gap: mission_id -> the last
seq its chain must reach (as the service's status API answers `seq`, or as a
checkpoint noted it). It is a lower bound, a snapshot taken earlier: records
beyond it are fine; a mission missing from the file, or a chain ending before
it, fails.

The transparency log (missionwatch.transparency) closes it too: every checkpoint record in
the file must hold against the records before it and the mission's previous checkpoint, and a
checkpoint kept from earlier (`checkpoint`) must be a prefix of the file's log: records cut off
the end, dropped, reordered or forked relative to it are named.

Exceptions: `ExpectError` (a ValueError) for an expectation file that cannot be
used. A broken log is not an exception: it is the `error` of the `VerifyReport`.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .admission import LimitExceeded, unique_object
from .canonical import CanonicalizationError, record_hash
from .records import OUT_SCHEMAS, SCHEMA_CHECKPOINT
from .signing import Keyring, VerifyFailure
from .transparency import Logs, TreeHead, check_checkpoint

__all__ = [
    "Chains",
    "ExpectError",
    "VerifyReport",
    "check_expectation",
    "check_out_record",
    "load_expectation",
    "verify_events",
]


@dataclass(frozen=True)
class VerifyReport:
    """What `verify_events` found: how many records verified, each mission's last verified
    seq (up to the first problem, if any), and the first problem, or None when the log is whole."""

    records: int
    missions: Mapping[str, int] = field(default_factory=dict)
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None

    def to_json(self) -> dict[str, Any]:
        """The `--json` answer: {"ok", "records", "missions": {mission_id: last_seq}, "error"}."""
        return {"ok": self.ok, "records": self.records,
                "missions": dict(sorted(self.missions.items())), "error": self.error}


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
    except RecursionError:
        return f"{where}: cannot be canonicalized (nested too deeply)"
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

    def last_seqs(self) -> dict[str, int]:
        """mission_id -> the seq of its chain's last record."""
        return {mission: seq for mission, (seq, _) in self.heads.items()}


class _Unreadable(ValueError):
    """A line that is not one JSON value in UTF-8; the message says why."""


_decoder = json.JSONDecoder(object_pairs_hook=unique_object)


def _parse(raw: bytes) -> Any:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise _Unreadable(f"not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    try:
        return _decoder.decode(text)
    except json.JSONDecodeError as exc:
        cut = "" if raw.endswith(b"\n") else "; the file ends here without a newline, as a file cut short does"
        raise _Unreadable(f"not valid JSON ({exc.msg}: column {exc.colno}){cut}") from None
    except RecursionError:
        raise _Unreadable("not valid JSON (nested too deeply)") from None
    except LimitExceeded as exc:  # a key given twice: readers disagree on which counts
        raise _Unreadable(exc.reason) from None


def _check_line(raw: bytes, keyring: Keyring, chains: Chains, logs: Logs) -> str | None:
    """None when the line is the next record of its mission's chain (or a checkpoint of its log
    that holds), else why not."""
    try:
        rec = _parse(raw)
    except _Unreadable as exc:
        return str(exc)
    if isinstance(rec, dict) and rec.get("schema") == SCHEMA_CHECKPOINT:
        head = check_checkpoint(rec, keyring)
        return head if isinstance(head, str) else logs.checkpoint(head)
    checked = check_out_record(rec, keyring)
    if isinstance(checked, str):
        return checked
    error = chains.extend(*checked, rec.get("prev_hash"))
    if error is None:
        logs.record(checked[0], checked[2])
    return error


def _walk(lines: Iterable[bytes], keyring: Keyring, chains: Chains, logs: Logs) -> tuple[int, str | None]:
    """(records that verified, the first problem or None); blank lines are skipped."""
    n = 0
    for lineno, raw in enumerate(lines, 1):
        if not raw.strip():
            continue
        error = _check_line(raw, keyring, chains, logs)
        if error is not None:
            return n, f"line {lineno}: {error}"
        n += 1
    return n, None


def verify_events(path: str | Path, keyring: Keyring, expect: Mapping[str, int] | None = None,
                  checkpoint: TreeHead | None = None) -> VerifyReport:
    """Verify an events file: every record, every chain, every checkpoint of the transparency
    log; given `expect` (mission_id -> the least last seq, see `load_expectation`), that no
    expected mission or record is missing; given `checkpoint` (one kept from earlier,
    `transparency.load_checkpoint`), that the file's log holds it. The report names the first
    problem. OSError when the file cannot be read."""
    chains, logs = Chains(), Logs()
    with Path(path).open("rb") as f:
        n, error = _walk(f, keyring, chains, logs)
    if error is None and n == 0:
        error = "no out records: the file is empty or blank, so there is nothing to verify"
    if error is None and expect is not None:
        error = check_expectation(chains.last_seqs(), expect)
    if error is None and checkpoint is not None:
        error = logs.against(checkpoint)
    return VerifyReport(n, chains.last_seqs(), error)


def check_expectation(missions: Mapping[str, int], expect: Mapping[str, int]) -> str | None:
    """None when every expected mission's chain reaches its expected seq (or goes beyond it);
    otherwise why the first one (in `expect`'s order) falls short, and how many others do."""
    short = [_shortfall(mission, missions.get(mission), want) for mission, want in expect.items()]
    problems = [p for p in short if p is not None]
    if not problems:
        return None
    more = len(problems) - 1
    return problems[0] + (f" ({more} more expected mission{'s fall' if more > 1 else ' falls'} short)"
                          if more else "")


def _shortfall(mission: str, last: int | None, want: int) -> str | None:
    if last is None:
        return (f"mission {mission!r}: expected its chain up to seq {want}, but the file holds no "
                "record of this mission (its chain was deleted)")
    if last < want:
        missing = want - last
        return (f"mission {mission!r}: the chain ends at seq {last}, expected at least seq {want}: "
                f"{missing} record{'s are' if missing > 1 else ' is'} missing from its end (the file "
                "was cut short, or trailing records such as a control signal were removed)")
    return None


class ExpectError(ValueError):
    """An expectation file that cannot be used; the message names the file and why."""


class _Pairs(list[tuple[str, Any]]):
    """A JSON object as parsed, keys in order, duplicates kept (to be refused by name)."""


def _describe(value: Any) -> str:
    if isinstance(value, _Pairs):
        return "an object"
    if isinstance(value, list):
        return "an array"
    if value is None:
        return "null (a mission with no out records yet has no seq to expect: leave it out)"
    return json.dumps(value)


def load_expectation(path: str | Path) -> dict[str, int]:
    """Read an expectation file: one JSON object, mission_id -> last seq (a non-negative
    integer), at least one mission, each named once. ExpectError says what is wrong."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ExpectError(f"{path}: cannot read the expectation ({exc.strerror})") from None
    except UnicodeDecodeError as exc:
        raise ExpectError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    try:
        data = json.loads(text, object_pairs_hook=_Pairs)
    except json.JSONDecodeError as exc:
        raise ExpectError(f"{path}: not valid JSON ({exc.msg} at line {exc.lineno} "
                          f"column {exc.colno})") from None
    except RecursionError:
        raise ExpectError(f"{path}: not valid JSON (nested too deeply)") from None
    return _expectation(data, str(path))


def _expectation(data: Any, source: str) -> dict[str, int]:
    if not isinstance(data, _Pairs):
        raise ExpectError(f'{source}: must be a JSON object mapping mission_id to its last seq, '
                          f'e.g. {{"retention-campaign-2026-q2": 41}}; got {_describe(data)}')
    if not data:
        raise ExpectError(f"{source}: names no mission; an expectation must name at least one")
    expect: dict[str, int] = {}
    for mission, seq in data:
        if mission in expect:
            raise ExpectError(f"{source}: mission {mission!r} appears twice")
        if type(seq) is not int or seq < 0:
            raise ExpectError(f"{source}: mission {mission!r}: the last seq must be a non-negative "
                              f"integer, got {_describe(seq)}")
        expect[mission] = seq
    return expect
