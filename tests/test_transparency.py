"""The monitor's transparency log end to end: checkpoints in a replay's events (deterministic),
`verify --checkpoint` naming truncation, deletion, reordering, a fork and a tampered checkpoint,
`prove` and its offline check, README's hand check, a witness's cosignature, and the gate
holding a mission whose checkpoints do not hold."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from missionwatch.gate import Gate
from missionwatch.monitor import Monitor
from missionwatch.replay import replay_file
from missionwatch.signing import Keyring, Signer, load_private_key, write_private_key
from missionwatch.sim import Campaign, write_campaign
from missionwatch.spec import SpecRegistry
from missionwatch.stream.demo import write_demo_specs
from missionwatch.tlog import Checkpoint, MerkleTree, leaf_of, log_origin, note_name, sign_note
from missionwatch.tlog import verify_cosignature as check_cosignature
from tests.conftest import ROOT, SPECS

README = (ROOT / "README.md").read_text()
CHECKPOINT = "missionwatch/checkpoint@1"


def cli(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "missionwatch.cli", *map(str, args)], capture_output=True,
                          text=True, timeout=120)


@pytest.fixture(scope="module")
def log(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A replayed campaign whose discount gap pauses the mission: its events and keys."""
    root = tmp_path_factory.mktemp("tlog")
    c = write_campaign(Campaign(mission_id="m-t", seed=7, actions=4000, subjects=1000,
                                discount_gap="age_band=65+", discount_gap_factor=0.3), root / "c")
    specs = write_demo_specs(SPECS, root / "specs")
    with (specs / "retention.toml").open("a") as f:
        f.write("\n[transparency]\nevery = 2\n")  # a checkpoint every other record
    runs = []
    for name in ("r1", "r2"):
        m = Monitor(SpecRegistry.load_dir(specs), signer=load_private_key(c["monitor-1"]),
                    keyring=Keyring.load(c["keyring"]))
        replay_file(c["receipts"], root / name, m, workers=0)
        runs.append((root / name / "events.jsonl").read_bytes())
    lines = runs[0].splitlines()
    recs = [json.loads(ln) for ln in lines]
    assert any(r["schema"] == "missionwatch/control@1" for r in recs)
    return {"root": root, "events": root / "r1" / "events.jsonl", "keys": c["keyring"], "lines": lines,
            "recs": recs, "monitor": load_private_key(c["monitor-1"]), "second": runs[1]}


def keep(path: Path, rec: dict[str, Any]) -> Path:
    path.write_text(json.dumps(rec))
    return path


def test_checkpoints_follow_controls_and_the_cadence_and_replay_identically(log: dict[str, Any]) -> None:
    recs = log["recs"]
    assert log["second"] == log["events"].read_bytes()  # byte for byte, checkpoints included
    chain = [r for r in recs if r["schema"] != CHECKPOINT]
    cps = [r for r in recs if r["schema"] == CHECKPOINT]
    assert cps and [c["tree_size"] for c in cps] == sorted({c["tree_size"] for c in cps})
    for i, r in enumerate(recs):  # each checkpoint right after the record it ends with
        if r["schema"] == CHECKPOINT:
            assert recs[i - 1]["seq"] == r["tree_size"] - 1 and r["issued_at"] == recs[i - 1]["issued_at"]
    after_controls = {r["seq"] + 1 for r in chain if r["schema"] == "missionwatch/control@1"}
    assert after_controls <= {c["tree_size"] for c in cps}
    tree = MerkleTree()
    for r in chain:
        tree.append(leaf_of(r["hash"]))
    for c in cps:
        assert c["root_hash"] == tree.root(c["tree_size"]).hex()
        note = Checkpoint.parse(c["note"])
        assert note.origin == log_origin("monitor-1", "m-t") and note.size == c["tree_size"]
    done = cli("verify", log["events"], "--keys", log["keys"])
    assert done.returncode == 0, done.stderr
    from missionwatch.store.query import open_ledger  # the analysts' ledger has them too

    con = open_ledger(ledger=log["root"] / "r1" / "ledger.duckdb")
    assert con.execute("SELECT list(tree_size ORDER BY tree_size), list(root_hash ORDER BY tree_size) "
                       "FROM checkpoints").fetchone() == ([c["tree_size"] for c in cps], [c["root_hash"] for c in cps])


def test_verify_against_a_kept_checkpoint_names_what_happened(log: dict[str, Any], tmp_path: Path) -> None:
    lines, recs = log["lines"], log["recs"]
    cps = [i for i, r in enumerate(recs) if r["schema"] == CHECKPOINT]
    last = cps[-1]
    kept = keep(tmp_path / "cp.json", recs[last])
    whole = cli("verify", log["events"], "--keys", log["keys"], "--checkpoint", kept)
    assert whole.returncode == 0, whole.stderr

    def verdict(name: str, keep_lines: list[bytes]) -> str:
        (tmp_path / name).write_bytes(b"\n".join(keep_lines) + b"\n")
        done = cli("verify", tmp_path / name, "--keys", log["keys"], "--checkpoint", kept)
        assert done.returncode == 1, (name, done.stdout)
        return done.stderr

    cut = verdict("cut.jsonl", lines[: cps[-2] + 1])  # the tail after an earlier checkpoint cut off
    assert re.search(r"the checkpoint covers \d+ records .* the file holds \d+: records were cut off", cut), cut
    deleted = verdict("deleted.jsonl", lines[:5] + lines[6:])
    assert "a record is missing before it" in deleted
    swapped = verdict("swapped.jsonl", [*lines[:5], lines[6], lines[5], *lines[7:]])
    assert "expected seq" in swapped
    # a fork: the key holder rewrites a record and re-signs every record after it
    signer: Signer = log["monitor"]
    chain = [r for r in recs if r["schema"] != CHECKPOINT]
    forked, prev = [], None
    for r in chain:
        body = {k: v for k, v in r.items() if k not in ("hash", "signature")}
        if r["seq"] == 3:
            body["review_status"] = "continue"  # what it said to one reader
        body["prev_hash"] = prev
        sealed = signer.seal(body)
        prev = sealed["hash"]
        forked.append(json.dumps(sealed).encode())
    fork = verdict("fork.jsonl", forked)
    assert "do not hash to the checkpoint's root" in fork and "forked" in fork
    # a tampered checkpoint is refused before anything is compared
    bad = dict(recs[last], root_hash="00" * 32)
    done = cli("verify", log["events"], "--keys", log["keys"], "--checkpoint", keep(tmp_path / "bad.json", bad))
    assert done.returncode == 2 and "hash does not match" in done.stderr
    stranger = Signer.generate("monitor-1")
    resealed = stranger.seal({k: v for k, v in recs[last].items() if k not in ("hash", "signature")})
    done = cli("verify", log["events"], "--keys", log["keys"], "--checkpoint",
               keep(tmp_path / "stranger.json", resealed))
    assert done.returncode == 2 and "signature does not verify" in done.stderr
    # inside the file too: an edited checkpoint line fails verify
    edited = [json.dumps(bad).encode() if i == last else ln for i, ln in enumerate(lines)]
    assert "hash does not match" in verdict("edited.jsonl", edited)


def test_prove_and_check_inclusion_and_consistency(log: dict[str, Any], tmp_path: Path) -> None:
    recs = log["recs"]
    cps = [r for r in recs if r["schema"] == CHECKPOINT]
    rec = next(r for r in recs if r["schema"] == "missionwatch/control@1")
    done = cli("prove", rec["hash"], "--log", log["events"], "--keys", log["keys"])
    assert done.returncode == 0, done.stderr
    p = json.loads(done.stdout)
    cp = p["checkpoint"]
    assert cp == cps[-1] and p["leaf_index"] == rec["seq"] and len(p["proof"]) >= 1
    # README's hand check, run as written
    code = README.split("**Checking a record by hand**")[1].split("```python")[1].split("```")[0]
    exec(compile(code, "README.md", "exec"), {"rec": rec, "cp": cp, "p": p})
    (tmp_path / "inc.json").write_text(done.stdout)
    checked = cli("prove", "--check", tmp_path / "inc.json", "--keys", log["keys"])
    assert checked.returncode == 0 and json.loads(checked.stdout)["ok"], checked.stderr
    (tmp_path / "bad.json").write_text(json.dumps({**p, "leaf_index": p["leaf_index"] + 1}))
    assert cli("prove", "--check", tmp_path / "bad.json", "--keys", log["keys"]).returncode == 1
    old, new = keep(tmp_path / "old.json", cps[0]), keep(tmp_path / "new.json", cps[-1])
    done = cli("prove", "--consistency", old, new, "--log", log["events"], "--keys", log["keys"])
    assert done.returncode == 0, done.stderr
    (tmp_path / "con.json").write_text(done.stdout)
    assert cli("prove", "--check", tmp_path / "con.json", "--keys", log["keys"]).returncode == 0
    gone = cli("prove", "sha256:" + "0" * 64, "--log", log["events"], "--keys", log["keys"])
    assert gone.returncode == 1 and "no out record has the hash" in gone.stderr


def test_a_witness_cosigns_a_checkpoint_it_verified(log: dict[str, Any], tmp_path: Path) -> None:
    witness = Signer.generate("w1")
    write_private_key(witness, tmp_path / "w1.pem")
    kept = keep(tmp_path / "cp.json", [r for r in log["recs"] if r["schema"] == CHECKPOINT][-1])
    done = cli("verify", log["events"], "--keys", log["keys"], "--checkpoint", kept, "--witness",
               tmp_path / "w1.pem", "--witness-name", "witness.example/w1")
    assert done.returncode == 0, done.stderr
    note = Checkpoint.parse(done.stdout)
    assert check_cosignature(note, "witness.example/w1", witness.public_key) > 1_700_000_000
    cut = tmp_path / "cut.jsonl"
    cut.write_bytes(b"\n".join(log["lines"][:5]) + b"\n")
    refused = cli("verify", cut, "--keys", log["keys"], "--checkpoint", kept, "--witness", tmp_path / "w1.pem")
    assert refused.returncode == 1 and refused.stdout == ""  # nothing cosigned


# ------------------------------------------------------------------ the gate
def checkpoint_record(signer: Signer, mission: str, hashes: list[str], old: int,
                      root: bytes | None = None) -> bytes:
    """A checkpoint of the first len(hashes) records, as the monitor issues it (`root` to lie)."""
    tree = MerkleTree()
    for h in hashes:
        tree.append(leaf_of(h))
    size = tree.size
    root = root or tree.root()
    origin = log_origin(signer.key_id, mission)
    rec = signer.seal({
        "schema": CHECKPOINT, "mission_id": mission, "issued_at": "2026-05-01T00:00:00Z", "origin": origin,
        "tree_size": size, "root_hash": root.hex(),
        "note": sign_note(Checkpoint(origin, size, root).body, note_name(signer.key_id), signer.key),
        "consistency": {"from_size": old, "proof": [x.hex() for x in tree.consistency(old, size)]},
        "inclusion": {"leaf_index": size - 1, "proof": [x.hex() for x in tree.inclusion(size - 1, size)]}})
    return json.dumps(rec).encode()


def paused(signer: Signer, keyring: Keyring) -> tuple[Gate, list[bytes], list[str]]:
    """A gate that saw m-1 paused (seq 1) and the checkpoint after it; the records of seq 0 to 3
    (a resume at 3) and their hashes."""
    from tests.test_gate import chain

    records = chain(signer, "m-1", [None, "paused", None, "running"])
    hashes = [json.loads(r)["hash"] for r in records]
    gate = Gate("127.0.0.1:1", keyring)
    for r in records[:2]:
        gate.receive(r)
    gate.receive(checkpoint_record(signer, "m-1", hashes[:2], 0))
    assert gate.is_paused("m-1")
    return gate, records, hashes


def test_the_gate_resumes_only_with_a_checkpoint_that_includes_the_resume(keys: dict[str, Signer],
                                                                          keyring: Keyring) -> None:
    signer = keys["monitor"]
    gate, records, hashes = paused(signer, keyring)
    gate.receive(records[2])
    gate.receive(records[3])
    assert gate.is_paused("m-1")  # the resume is verified in the chain, not yet in a checkpoint
    gate.receive(checkpoint_record(signer, "m-1", hashes, 2))
    assert not gate.is_paused("m-1") and gate.problems == []


@pytest.mark.parametrize("lie", ["forked root", "same size, other root", "rewritten history"])
def test_the_gate_holds_a_mission_whose_checkpoints_do_not_hold(keys: dict[str, Signer], keyring: Keyring,
                                                                lie: str) -> None:
    from tests.test_gate import chain

    signer = keys["monitor"]
    gate, records, hashes = paused(signer, keyring)
    for r in records[2:]:
        gate.receive(r)
    if lie == "forked root":
        gate.receive(checkpoint_record(signer, "m-1", hashes, 2, root=b"\x07" * 32))
    elif lie == "same size, other root":
        gate.receive(checkpoint_record(signer, "m-1", [*hashes[:1], hashes[3]], 0))
    else:  # a checkpoint of another history of the same length, consistent with nothing seen
        other = [json.loads(r)["hash"] for r in chain(signer, "m-1", [None, None, None, "running"])]
        gate.receive(checkpoint_record(signer, "m-1", other, 2))
    assert gate.is_paused("m-1")
    assert gate.broken("m-1") is not None or gate.problems, (gate.broken("m-1"), gate.problems)


def test_a_forged_checkpoint_is_never_trusted(keys: dict[str, Signer], keyring: Keyring) -> None:
    from tests.test_gate import chain

    stranger = Signer.generate("monitor-x")
    records = chain(keys["monitor"], "m-1", [None, "paused"])
    gate = Gate("127.0.0.1:1", keyring)
    for r in records:
        gate.receive(r)
    gate.receive(checkpoint_record(stranger, "m-1", [json.loads(r)["hash"] for r in records], 0))
    assert gate.problems and "signature does not verify" in gate.problems[-1]
