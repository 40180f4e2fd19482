"""Checkpoints (stream/checkpoint.py): a partition restored from its checkpoint and fed the rest
of its log is the state a replay from offset 0 reaches (the same out records, views and
ledger); a missing, corrupt, foreign or out-of-date checkpoint, or one ahead of the live
ledger, falls back to the log."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from pathlib import Path
from typing import Any

import pytest

from missionwatch.monitor import Monitor
from missionwatch.signing import Keyring, load_private_key
from missionwatch.sim import Campaign, write_campaign
from missionwatch.spec import SpecRegistry
from missionwatch.store.query import open_ledger
from missionwatch.stream.checkpoint import Checkpoints
from missionwatch.stream.core import StreamCore
from missionwatch.stream.dumper import Dumper
from tests.conftest import SPECS
from tests.stream.conftest import KILLED_SESSION_TIMEOUT, Worker, produce, published, wait_committed


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("ckpt")
    c = write_campaign(Campaign(mission_id="m-ck", seed=7, actions=3000, subjects=800,
                                discount_gap="age_band=65+", discount_gap_factor=0.3), root / "c")
    lines = [ln for ln in c["receipts"].read_bytes().splitlines() if ln.strip()]
    registry, keyring = SpecRegistry.load_dir(SPECS), Keyring.load(c["keyring"])
    signer = load_private_key(c["monitor-1"])

    def make(specs: SpecRegistry = registry) -> Monitor:
        return Monitor(specs, signer=signer, keyring=keyring)

    whole = core_of(root / "whole", make)
    published = run(whole, lines, 0)
    assert any(b'"missionwatch/escalation@1"' in v for v in published)
    return {"root": root, "lines": lines, "make": make, "published": published, "whole": whole}


def core_of(data: Path, make: Any) -> StreamCore:
    core = StreamCore(make, ledger=data / "ledger", checkpoints=Checkpoints(data / "checkpoints"))
    core.assign([0])
    return core


def run(core: StreamCore, lines: list[bytes], start: int) -> list[bytes]:
    """Catch up from where the core's state stands to `start`, then process the rest live: the
    values published."""
    core.catch_up(0, [(i, ln) for i, ln in enumerate(lines[:start])])
    core.activate(0)
    return [p.value for i, ln in enumerate(lines) if i >= start for p in core.process(0, i, ln)
            if p.topic != "missionwatch.rejected"]


def checkpointed(data: Path, make: Any, lines: list[bytes], at: int) -> None:
    """A worker that processed lines[:at], committed its ledger and checkpointed (in a forked
    child, as a worker does: stream/dumper.py), then died."""
    core = core_of(data, make)
    run(core, lines[:at], 0)
    assert core.checkpoints is not None
    dumper = Dumper(core.checkpoints)
    child = dumper.start(core.checkpoint_jobs())  # forked in the turn the ledger's commit is taken
    jobs = core.ledgers.jobs()
    for i, ln in enumerate(lines[at:at + 50], at):
        core.process(0, i, ln)  # the worker's state moves on meanwhile; the child's does not
    assert child is not None and all(led.write() for led in jobs)
    assert asyncio.run(dumper.settle(child, True)) == [(0, at - 1)]
    for led in core.ledgers.values():  # kill -9: its lock goes with it
        led._lock.close()


def test_a_restored_partition_continues_as_a_replay_would(setup: dict[str, Any], tmp_path: Path) -> None:
    lines, make = setup["lines"], setup["make"]
    at = 1777
    checkpointed(tmp_path, make, lines, at)
    again = core_of(tmp_path, make)
    assert again.next_offset[0] == at  # restored: only the tail is fed
    published = run(again, lines, at)
    whole: StreamCore = setup["whole"]
    # every record published after the checkpoint is the one the uninterrupted worker published
    assert published and set(published) <= set(setup["published"])
    tail = [v for v in setup["published"] if json.loads(v)["seq"] >= json.loads(published[0])["seq"]]
    assert published == tail
    assert again.view("m-ck") == whole.view("m-ck")
    assert again.history("m-ck") == whole.history("m-ck")
    for led in list(again.ledgers):
        again.ledgers.close(led)
    con = open_ledger(data=tmp_path)
    assert con.execute("SELECT count(*), count(DISTINCT receipt_id) FROM actions").fetchone() == (
        (whole.view("m-ck").totals["actions"],) * 2)  # type: ignore[union-attr]


@pytest.mark.parametrize("damage", ["flipped", "cut", "version", "foreign", "garbage"])
def test_a_damaged_checkpoint_falls_back_to_the_log(setup: dict[str, Any], tmp_path: Path, damage: str,
                                                    caplog: pytest.LogCaptureFixture) -> None:
    lines, make = setup["lines"], setup["make"]
    checkpointed(tmp_path, make, lines, 900)
    path = tmp_path / "checkpoints" / "p0000.ckpt"
    data = path.read_bytes()
    head, _, payload = data.partition(b"\n")[2].partition(b"\n")
    header = json.loads(head)
    if damage == "flipped":
        data = data[:-100] + bytes([data[-100] ^ 1]) + data[-99:]
    elif damage == "cut":
        data = data[: len(data) // 2]
    elif damage == "version":
        data = b"MWCKPT1\n" + json.dumps({**header, "version": 99}).encode() + b"\n" + payload
    elif damage == "foreign":
        data = b"MWCKPT1\n" + json.dumps({**header, "partition": 3}).encode() + b"\n" + payload
    else:
        data = b"\x80\x05 not a checkpoint"
    path.write_bytes(data)
    with caplog.at_level(logging.WARNING, logger="missionwatch.stream"):
        again = core_of(tmp_path, make)
    assert again.next_offset[0] == 0 and not again.partitions[0].missions  # rebuilt from the log
    said = {"flipped": "corrupt", "cut": "corrupt", "version": "format version 99", "foreign": "another partition",
            "garbage": "not a missionwatch checkpoint"}[damage]
    assert said in caplog.text, caplog.text
    assert run(again, lines, 900)[-1] == setup["published"][-1]


def test_a_checkpoint_of_other_specs_or_ahead_of_the_ledger_is_not_used(setup: dict[str, Any], tmp_path: Path,
                                                                         caplog: pytest.LogCaptureFixture) -> None:
    lines, make = setup["lines"], setup["make"]
    checkpointed(tmp_path / "a", make, lines, 1200)
    specs = tmp_path / "specs"
    specs.mkdir()
    for f in SPECS.glob("*.toml"):
        (specs / f.name).write_text(f.read_text() + "\n# edited\n")
    with caplog.at_level(logging.WARNING, logger="missionwatch.stream"):
        other = core_of(tmp_path / "a", lambda: make(SpecRegistry.load_dir(specs)))
        assert other.next_offset[0] == 0 and "another configuration" in caplog.text
        checkpointed(tmp_path / "b", make, lines, 1200)
        commit = tmp_path / "b" / "ledger" / "commits" / "p0000.json"
        commit.write_text(json.dumps({**json.loads(commit.read_text()), "offset": 500}))
        behind = core_of(tmp_path / "b", make)
    assert behind.next_offset[0] == 0 and "ahead of the ledger's commit (500)" in caplog.text


def test_a_worker_killed_with_9_recovers_from_its_checkpoint(broker: Any, setup: dict[str, Any],
                                                             tmp_path: Path) -> None:
    """Through Kafka: a worker checkpoints every second, is killed with -9 halfway; the next one
    replays only the log after the checkpoint and publishes what a replay publishes."""
    lines = setup["lines"]
    c = setup["root"] / "c"
    want = {(json.loads(v)["mission_id"], json.loads(v)["seq"]): v for v in setup["published"]}
    data, half = tmp_path / "data", len(lines) // 2
    extra = ("--checkpoint-every", "1", "--ledger-every", "0.5")
    first = Worker(broker, data, c / "keyring.json", c / "monitor-1.pem", group="ck9",
                   session_timeout=KILLED_SESSION_TIMEOUT, extra=extra)
    try:
        first.wait_assigned(want=4)
        produce(broker.bootstrap, lines[:half])
        wait_committed(broker.bootstrap, "ck9", half)
        ckpt = data / "checkpoints"
        deadline = time.monotonic() + 30
        while not list(ckpt.glob("p*.ckpt")) and time.monotonic() < deadline:
            time.sleep(0.2)
        time.sleep(1.5)  # a checkpoint after the last message
        first.kill9()
    finally:
        first.stop()
    assert list(ckpt.glob("p*.ckpt"))
    produce(broker.bootstrap, lines[half:])
    second = Worker(broker, data, c / "keyring.json", c / "monitor-1.pem", group="ck9", extra=extra)
    try:
        second.wait_assigned(want=4)
        got = published(broker.bootstrap, len(want))
        replayed = second.metric("missionwatch_replayed_messages_total")
        log = second.log_path.read_text()
    finally:
        assert second.stop() == 0
    assert "restored from its checkpoint" in log
    assert "taken in" in log and "not taken" not in log  # by forked children (stream/dumper.py)
    assert not list(ckpt.glob(".tmp-*"))  # a child cut by the kill leaves nothing behind
    assert replayed < half // 10  # only the tail after the checkpoint, not the half already done
    assert {k: v[0] for k, v in got.items()} == want
    con = open_ledger(data=data)
    assert con.execute("SELECT count(*), count(DISTINCT receipt_id) FROM actions").fetchone() == (
        (setup["whole"].view("m-ck").totals["actions"],) * 2)


def test_a_checkpoint_is_refused_after_any_change_of_the_code(setup: dict[str, Any], tmp_path: Path) -> None:
    """The fingerprint covers the package's sources, not only its version: a checkpoint pickles
    the core's objects, and a change of what they mean must send the partition back to the log."""
    import shutil

    from missionwatch.stream.checkpoint import PACKAGE, code_digest, fingerprint_parts

    assert fingerprint_parts(setup["make"]())["code"] == code_digest() == code_digest(PACKAGE)
    copy = tmp_path / "missionwatch"
    shutil.copytree(PACKAGE, copy, ignore=shutil.ignore_patterns("__pycache__", "*.so"))
    digest = code_digest.__wrapped__  # uncached: the copy changes
    assert digest(copy) == code_digest()  # the same sources, wherever they are
    target = copy / "stats" / "cs.py"
    target.write_text(target.read_text().replace("DEFAULT_T0 = 500.0", "DEFAULT_T0 = 501.0"))
    assert digest(copy) != code_digest()
    (copy / "stats" / "new_module.py").write_text("")
    target.write_text(target.read_text().replace("DEFAULT_T0 = 501.0", "DEFAULT_T0 = 500.0"))
    assert digest(copy) != code_digest()  # a file added counts too
