"""The stateless half of the core: signatures checked in worker processes give the
same records, rejections and out records as signatures checked in-process."""

from __future__ import annotations

import json
from typing import Any

from missionwatch.intake import Intake, Prepared, verify_ahead
from missionwatch.monitor import Monitor
from missionwatch.replay import replay_lines
from missionwatch.signing import Keyring, Signer
from missionwatch.spec import SpecRegistry

from .conftest import action, line

BATCH = "missionwatch/batch@1"


def messy_stream(keys: dict[str, Signer]) -> list[str | bytes]:
    """Every way a message's signatures can come out, mixed with good records."""
    gate, reviewer, stranger = keys["gate"], keys["reviewer"], keys["stranger"]
    lines: list[str | bytes] = []
    for i in range(40):
        rec = action(i, subject=f"cust-{i % 7}", action_type="offer.discount" if i % 3 else "email.send",
                     discount_pct=10)
        kind = i % 10
        if kind == 0:
            lines.append(line(stranger.sign(rec)))  # unknown key
        elif kind == 1:
            signed = gate.sign(rec)
            lines.append(line({**signed, "attributes": {"discount_pct": 99}}))  # bad signature
        elif kind == 2:
            lines.append(line(reviewer.sign(rec)))  # wrong role
        elif kind == 3:
            lines.append(line(gate.sign({"schema": BATCH, "batch_id": f"b-{i}",
                                         "items": [action(1000 + i), action(2000 + i), 7]})))
        elif kind == 4:
            lines.append(line({"schema": BATCH, "batch_id": f"u-{i}",
                               "items": [gate.sign(action(3000 + i)), action(4000 + i),
                                         stranger.sign(action(5000 + i))]}))
        elif kind == 5:
            lines.extend(["", "not json", b"\xff\xfe", "[1, 2]"])
        else:
            lines.append(line(gate.sign(rec)).encode() if kind == 6 else line(gate.sign(rec)))
    lines.append(line(reviewer.sign({"schema": "missionwatch/review@1", "review_id": "rv-1",
                                     "mission_id": "m-1", "escalation_id": "esc-m-1-1",
                                     "reviewer_id": "r", "decision": "resume",
                                     "occurred_at": "2026-05-02T00:00:00Z"})))
    return lines


def view(p: Prepared) -> tuple[Any, ...]:
    """A Prepared as plain values (a Reject is an exception: it compares by identity)."""
    reject = (p.reject.code, p.reject.reason) if p.reject else None
    return p.record, p.payload, p.schema, p.signer, reject, tuple(view(i) for i in p.items)


def test_worker_signatures_equal_in_process(keys: dict[str, Signer], keyring: Keyring) -> None:
    stream = messy_stream(keys)
    intake = Intake(keyring)
    ahead = list(verify_ahead(stream, keyring, 2, chunk=3, window=1))
    assert [x for x, _ in ahead] == stream  # every line, in order
    found = {type(s[0]).__name__ if s else None for _, s in ahead}
    assert {"str", "VerifyFailure", None} <= found
    for raw, signatures in ahead:
        if not raw.strip():
            assert signatures is None
            continue
        assert signatures == intake.prepare(raw).signatures()
        assert view(intake.prepare(raw, signatures)) == view(intake.prepare(raw))


def test_replay_with_workers_equals_replay_without(registry: SpecRegistry, keys: dict[str, Signer],
                                                   keyring: Keyring) -> None:
    stream = messy_stream(keys)

    def run(workers: int) -> tuple[list[Any], list[Any], list[Any]]:
        result = replay_lines(Monitor(registry, signer=keys["monitor"], keyring=keyring), stream,
                              workers=workers)
        return (result.events, result.rejected,
                [(n, a.hash, a.key_id, a.batch_hash) for n, a in result.accepted])

    in_process, with_workers = run(0), run(2)
    assert in_process == with_workers
    codes = {r["code"] for r in in_process[1]}
    assert {"unknown_key", "bad_signature", "wrong_role", "malformed_json", "not_an_object",
            "signature_missing"} <= codes
    assert len(in_process[2]) > 20


def test_signatures_for_another_message_are_not_trusted_blindly(keys: dict[str, Signer],
                                                                keyring: Keyring) -> None:
    intake = Intake(keyring)
    batch = line(keys["gate"].sign({"schema": BATCH, "batch_id": "b", "items": [action(1), action(2)]}))
    # a result with the wrong number of items cannot be this message's: checked again
    p = intake.prepare(batch, ("gate-1", (None,)))
    assert p.signatures() == ("gate-1", (None, None))
    bad = json.loads(batch)
    bad["batch_id"] = "changed"
    assert intake.prepare(line(bad), ("gate-1", (None,))).signer != "gate-1"


def test_no_workers_or_no_keys_checks_in_process(keys: dict[str, Signer], keyring: Keyring) -> None:
    stream = messy_stream(keys)[:5]
    assert all(s is None for _, s in verify_ahead(stream, keyring, 0))
    assert all(s is None for _, s in verify_ahead(stream, Keyring(), 2))
