"""Checking the monitor's transparency log from its out records (missionwatch.tlog): a
checkpoint record on its own, every checkpoint of an events file against the records before
it, an events file against a checkpoint someone kept, and the proofs `missionwatch prove`
prints. What `missionwatch verify` and the gateway's client use.

A checkpoint record (CONTRACT 1.9) is `missionwatch/checkpoint@1`, signed like every out
record and outside the mission's chain: `tree_size` records of the chain (seq 0 to
tree_size - 1) are its leaves, `root_hash` their RFC 9162 root, `note` the same as a C2SP
signed note by `missionwatch/<key_id>`, `consistency` the proof from the mission's previous
checkpoint, `inclusion` the proof of its newest leaf.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from .canonical import CanonicalizationError, record_hash
from .records import SCHEMA_CHECKPOINT
from .signing import Keyring, VerifyFailure
from .tlog import (
    Checkpoint,
    MerkleTree,
    ProofError,
    leaf_of,
    log_origin,
    note_name,
    verify_consistency,
    verify_inclusion,
)

__all__ = ["LogState", "Logs", "ReadLog", "TreeHead", "check_checkpoint", "check_proof", "consistency_between",
           "inclusion_of", "load_checkpoint", "monitor_key", "read_log"]


@dataclass(frozen=True)
class TreeHead:
    """A checked checkpoint record: its mission, size, root, note, the record itself."""

    mission_id: str
    size: int
    root: bytes
    note: Checkpoint
    record: dict[str, Any]


def monitor_key(rec: dict[str, Any], keyring: Keyring) -> tuple[str, Ed25519PublicKey] | None:
    sig = rec.get("signature")
    key_id = sig.get("key_id") if isinstance(sig, dict) else None
    entry = keyring.keys.get(key_id) if isinstance(key_id, str) else None
    return (key_id, entry[0]) if key_id is not None and entry is not None and entry[1] == "monitor" else None


def _hexes(value: Any, what: str) -> list[bytes]:
    if not isinstance(value, list) or not all(isinstance(h, str) and len(h) == 64 for h in value):
        raise ProofError(f"{what} is not a list of 64-hex-digit hashes")
    try:
        return [bytes.fromhex(h) for h in value]
    except ValueError:
        raise ProofError(f"{what} is not a list of 64-hex-digit hashes") from None


def check_checkpoint(rec: Any, keyring: Keyring) -> TreeHead | str:
    """A checkpoint record on its own: its hash and monitor signature, its note (signed by the
    same key, saying the same origin, size and root); the checked head, or why not."""
    if not isinstance(rec, dict) or rec.get("schema") != SCHEMA_CHECKPOINT:
        return "not a missionwatch checkpoint record"
    mission, size = rec.get("mission_id"), rec.get("tree_size")
    where = f"mission {mission!r} checkpoint of size {size!r}"
    if not isinstance(mission, str) or not isinstance(size, int) or isinstance(size, bool) or size < 1:
        return f"{where}: mission_id or tree_size is missing"
    try:
        if rec.get("hash") != record_hash(rec):
            return f"{where}: the hash does not match the content (an edited checkpoint)"
    except (CanonicalizationError, RecursionError):
        return f"{where}: cannot be canonicalized"
    verified = keyring.verify(rec, "monitor")
    key = monitor_key(rec, keyring)
    if isinstance(verified, VerifyFailure) or key is None:
        return f"{where}: its signature does not verify under a monitor key of the keyring"
    try:
        note = Checkpoint.parse(str(rec.get("note")))
        if not note.signed_by(note_name(key[0]), key[1]):
            raise ProofError(f"the note carries no valid signature of {note_name(key[0])}")
        root = bytes.fromhex(str(rec.get("root_hash")))
    except (ProofError, ValueError) as exc:
        return f"{where}: {exc}"
    if (note.origin, note.size, note.root) != (log_origin(key[0], mission), size, root):
        return f"{where}: its note names another log, size or root than the record"
    return TreeHead(mission, size, root, note, rec)


@dataclass
class LogState:
    """One mission's log as a reader rebuilds it from the chain, and its latest checkpoint."""

    tree: MerkleTree = field(default_factory=MerkleTree)
    head: TreeHead | None = None


@dataclass
class Logs:
    """Every mission's log, fed the chain's records in seq order and the checkpoints among them."""

    missions: dict[str, LogState] = field(default_factory=dict)

    def record(self, mission: str, record_hash_: str) -> None:
        self.missions.setdefault(mission, LogState()).tree.append(leaf_of(record_hash_))

    def checkpoint(self, head: TreeHead) -> str | None:
        """None when the checkpoint holds against the records before it and the previous
        checkpoint, else why not."""
        log = self.missions.setdefault(head.mission_id, LogState())
        where = f"mission {head.mission_id!r} checkpoint of size {head.size}"
        if head.size > log.tree.size:
            return f"{where}: it covers {head.size} records, only {log.tree.size} come before it"
        if log.tree.root(head.size) != head.root:
            return f"{where}: the records before it do not hash to its root (altered or forked records)"
        try:
            proof = head.record.get("consistency") or {}
            old = log.head.size if log.head else 0
            if proof.get("from_size") != old:
                raise ProofError(f"its consistency proof starts at size {proof.get('from_size')!r}, not {old}")
            verify_consistency(old, head.size, log.head.root if log.head else log.tree.root(0), head.root,
                               _hexes(proof.get("proof"), "its consistency proof"))
            inc = head.record.get("inclusion") or {}
            if inc.get("leaf_index") != head.size - 1:
                raise ProofError("its inclusion proof is not of its newest leaf")
            verify_inclusion(head.size - 1, head.size, log.tree.levels[0][head.size - 1],
                             _hexes(inc.get("proof"), "its inclusion proof"), head.root)
        except ProofError as exc:
            return f"{where}: {exc}"
        log.head = head
        return None

    def against(self, kept: TreeHead) -> str | None:
        """None when the log read holds the checkpoint `kept` (one kept from earlier), else why."""
        log = self.missions.get(kept.mission_id)
        have = log.tree.size if log else 0
        where = f"mission {kept.mission_id!r}"
        if have < kept.size:
            return (f"{where}: the checkpoint covers {kept.size} records (seq 0 to {kept.size - 1}), the file "
                    f"holds {have}: records were cut off the end or deleted")
        assert log is not None
        if log.tree.root(kept.size) != kept.root:
            same = log.head is not None and log.head.size == kept.size
            what = ("two different checkpoints of the same size: the log forked" if same else
                    "records were dropped, reordered or altered, or the log forked")
            return f"{where}: the file's first {kept.size} records do not hash to the checkpoint's root: {what}"
        return None


def load_checkpoint(path: Path, keyring: Keyring) -> TreeHead:
    """A file holding one checkpoint record (as published), checked; ValueError naming why not."""
    try:
        rec = json.loads(path.read_bytes())
    except (OSError, ValueError) as exc:
        raise ValueError(f"{path}: not a checkpoint record ({exc})") from None
    head = check_checkpoint(rec, keyring)
    if isinstance(head, str):
        raise ValueError(f"{path}: {head}")
    return head


def inclusion_of(logs: Logs, record: dict[str, Any]) -> dict[str, Any]:
    """The inclusion proof of an out record against its mission's latest checkpoint."""
    mission, seq = record["mission_id"], record["seq"]
    log = logs.missions.get(mission)
    head = log.head if log is not None else None
    if head is None or seq >= head.size:
        raise ProofError(f"mission {mission!r} has no checkpoint covering seq {seq} yet")
    assert log is not None
    tree = log.tree
    return {"mission_id": mission, "seq": seq, "record_hash": record["hash"], "leaf_index": seq,
            "tree_size": head.size, "root_hash": head.root.hex(),
            "proof": [h.hex() for h in tree.inclusion(seq, head.size)], "checkpoint": head.record}


def consistency_between(logs: Logs, old: TreeHead, new: TreeHead) -> dict[str, Any]:
    """The consistency proof from checkpoint `old` to checkpoint `new` of one mission."""
    if old.mission_id != new.mission_id:
        raise ProofError("the two checkpoints are of different missions")
    log = logs.missions.get(new.mission_id)
    if log is None or log.tree.size < new.size:
        raise ProofError(f"the log holds fewer than the {new.size} records the newer checkpoint covers")
    if old.size > new.size:
        raise ProofError(f"the first checkpoint ({old.size}) is larger than the second ({new.size})")
    return {"mission_id": new.mission_id, "from_size": old.size, "to_size": new.size,
            "from_root": old.root.hex(), "to_root": new.root.hex(),
            "proof": [h.hex() for h in log.tree.consistency(old.size, new.size)],
            "from_checkpoint": old.record, "to_checkpoint": new.record}


@dataclass
class ReadLog:
    """An events file read for proving: each mission's log (its latest checkpoint is the log's
    `head`), and the records by hash."""

    logs: Logs = field(default_factory=Logs)
    records: dict[str, dict[str, Any]] = field(default_factory=dict)


def read_log(path: Path, keyring: Keyring) -> ReadLog:
    """Read an events file (records of each mission in seq order, checkpoints among them), each
    record and chain checked as `missionwatch verify` checks them, and every checkpoint;
    ValueError naming the first line that does not hold."""
    from .verify import Chains, check_out_record  # verify builds on this module

    out, chains = ReadLog(), Chains()
    with path.open("rb") as f:
        for lineno, raw in enumerate(f, 1):
            if not raw.strip():
                continue
            try:
                rec = json.loads(raw)
            except ValueError as exc:
                raise ValueError(f"{path} line {lineno}: not JSON ({exc})") from None
            if isinstance(rec, dict) and rec.get("schema") == SCHEMA_CHECKPOINT:
                head = check_checkpoint(rec, keyring)
                error = head if isinstance(head, str) else out.logs.checkpoint(head)
            else:
                checked = check_out_record(rec, keyring)
                error = checked if isinstance(checked, str) else chains.extend(*checked, rec.get("prev_hash"))
                if error is None and not isinstance(checked, str):
                    out.logs.record(checked[0], checked[2])
                    out.records[checked[2]] = rec
            if error is not None:
                raise ValueError(f"{path} line {lineno}: {error}")
    return out


def check_proof(proof: dict[str, Any], keyring: Keyring) -> str:
    """Check a proof `missionwatch prove` printed, offline: what it shows, or ProofError."""
    if "checkpoint" in proof:  # inclusion
        head = check_checkpoint(proof["checkpoint"], keyring)
        if isinstance(head, str):
            raise ProofError(head)
        if (proof.get("tree_size"), proof.get("root_hash")) != (head.size, head.root.hex()):
            raise ProofError("the proof names another size or root than its checkpoint")
        verify_inclusion(proof["leaf_index"], head.size, leaf_of(proof["record_hash"]),
                         _hexes(proof.get("proof"), "the proof"), head.root)
        return (f"record {proof['record_hash']} is seq {proof['leaf_index']} of mission {head.mission_id!r}'s "
                f"log of size {head.size}")
    heads = []
    for name in ("from", "to"):
        head = check_checkpoint(proof.get(f"{name}_checkpoint"), keyring)
        if isinstance(head, str):
            raise ProofError(f"{name}_checkpoint: {head}")
        heads.append(head)
    old, new = heads
    verify_consistency(old.size, new.size, old.root, new.root, _hexes(proof.get("proof"), "the proof"))
    return f"mission {new.mission_id!r}'s log of size {old.size} is a prefix of its log of size {new.size}"
