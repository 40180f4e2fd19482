"""Checkpoints taken in a forked child (stream/dumper.py): the event loop keeps turning while a
large dump runs; a child that is killed, hangs, or whose ledger commit failed leaves the previous
checkpoints as they were, and the next dump works. (That a child-written checkpoint restores to
the state a replay reaches: tests/stream/test_checkpoint.py, whose checkpoints the child writes.)"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import time
from pathlib import Path
from typing import Any

import pytest
from benchmarks.throughput import ticking

from missionwatch.monitor import Monitor
from missionwatch.signing import Keyring, load_private_key
from missionwatch.sim import Campaign, write_campaign
from missionwatch.spec import SpecRegistry
from missionwatch.stream.checkpoint import Checkpoints, Due
from missionwatch.stream.core import StreamCore
from missionwatch.stream.dumper import Dumper
from tests.conftest import SPECS

IN_LOOP_AT_LEAST = 1.5
"""Seconds the in-loop pickling of the big state takes at least (more copies until it does)."""


@pytest.fixture(scope="module")
def big(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """One partition's state (3,300 signed records), and as many copies of it, as partitions of
    their own, as take IN_LOOP_AT_LEAST seconds to pickle on the event loop."""
    root = tmp_path_factory.mktemp("dumper")
    c = write_campaign(Campaign(mission_id="m-d", seed=11, actions=3000, subjects=800), root / "c")
    registry, keyring = SpecRegistry.load_dir(SPECS), Keyring.load(c["keyring"])
    signer = load_private_key(c["monitor-1"])

    def make() -> Monitor:
        return Monitor(registry, signer=signer, keyring=keyring)

    core = StreamCore(make, checkpoints=Checkpoints(root / "seed"))
    core.assign([0])
    core.catch_up(0, enumerate(ln for ln in c["receipts"].read_bytes().splitlines() if ln.strip()))
    core.activate(0)
    (due,) = core.checkpoint_jobs()
    seed = core.checkpoints
    assert seed is not None
    seed.save(due)
    t = time.perf_counter()
    seed.dump(0, due.offset, due.monitor, due.history)
    copies = min(int(IN_LOOP_AT_LEAST * 1.5 / (time.perf_counter() - t)) + 1, 300)
    jobs: list[Due] = []
    in_loop = 0.0
    while in_loop < IN_LOOP_AT_LEAST and len(jobs) < 400:
        for _ in range(copies if not jobs else 10):
            got = seed.load(0, make())
            assert got is not None
            jobs.append(Due(len(jobs), due.offset, got.monitor, got.history))
        t = time.perf_counter()
        for j in jobs:  # what StreamCore.checkpoint_jobs + Checkpoints.dump did on the loop
            seed.dump(j.partition, j.offset, j.monitor, j.history)
        in_loop = time.perf_counter() - t
    return {"jobs": jobs, "in_loop": in_loop, "make": make, "due": due}


def test_the_loop_keeps_turning_while_a_large_dump_runs(big: dict[str, Any], tmp_path: Path) -> None:
    ck = Checkpoints(tmp_path)
    dumper = Dumper(ck)
    jobs: list[Due] = big["jobs"]

    async def dump() -> list[tuple[int, int]]:
        child = dumper.start(jobs)
        assert child is not None
        assert dumper.start(jobs[:1]) is None  # one child at a time
        return await dumper.settle(child, True)

    put, gap = asyncio.run(ticking(dump))
    assert put == [(j.partition, j.offset) for j in jobs]
    assert big["in_loop"] >= IN_LOOP_AT_LEAST
    # the fork's stall (tens of ms) against the pickling's (>= 1.5 s): a wide margin for a busy machine
    assert gap < big["in_loop"] / 4, (gap, big["in_loop"])
    assert not list(tmp_path.glob(".tmp-*"))
    for j in (jobs[0], jobs[-1]):
        got = ck.load(j.partition, big["make"]())
        assert got is not None and got.offset == j.offset
        assert got.monitor.view("m-d") == j.monitor.view("m-d")


@pytest.mark.parametrize("how", ["killed", "timeout", "ledger"])
def test_a_failed_dump_leaves_the_previous_checkpoint(big: dict[str, Any], tmp_path: Path, how: str,
                                                      caplog: pytest.LogCaptureFixture) -> None:
    """A child killed with -9, one past its timeout, or one whose ledger commit was not written:
    the previous checkpoint stays byte for byte, no temporary file is left, the log says why, and
    the loop went on meanwhile; the next dump works."""
    ck = Checkpoints(tmp_path)
    dumper = Dumper(ck, timeout=0.0 if how == "timeout" else 3600.0)
    old: Due = big["due"]
    ck.save(Due(0, old.offset - 100, old.monitor, old.history))
    before = ck.path(0).read_bytes()
    jobs = [Due(j.partition, old.offset, j.monitor, j.history) for j in big["jobs"]]

    async def dump() -> list[tuple[int, int]]:
        child = dumper.start(jobs)
        assert child is not None
        if how == "killed":
            os.kill(child.pid, signal.SIGKILL)
        return await dumper.settle(child, how != "ledger")

    with caplog.at_level(logging.INFO, logger="missionwatch.stream"):
        put, gap = asyncio.run(ticking(dump))
    assert put == []
    assert ck.path(0).read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["p0000.ckpt"]
    said = {"killed": "killed by signal 9", "timeout": "still running after 0 s: killed",
            "ledger": "the live ledger's commit taken with it was not written"}[how]
    assert f"not taken ({said}); the previous ones stay" in caplog.text, caplog.text
    assert gap < big["in_loop"] / 4, (gap, big["in_loop"])
    dumper.timeout = 3600.0
    child = dumper.start(jobs[:2])
    assert child is not None and asyncio.run(dumper.settle(child, True)) == [(0, old.offset), (1, old.offset)]
    got = ck.load(0, big["make"]())
    assert got is not None and got.offset == old.offset


def test_a_dump_cut_by_a_kill_leaves_no_file_behind(tmp_path: Path) -> None:
    """Temporary files of children no longer running (their worker was killed with -9) are
    deleted when the next worker starts; a running child's are not."""
    ck = Checkpoints(tmp_path)
    gone = Dumper(ck).temp(0, 2**22 + 1)  # above Linux's pid_max default: no such process
    running = Dumper(ck).temp(1, os.getpid())
    gone.write_bytes(b"half")
    running.write_bytes(b"half")
    Dumper(ck)
    assert not gone.exists() and running.exists()


def test_a_stopping_worker_waits_for_its_child(big: dict[str, Any], tmp_path: Path) -> None:
    """At shutdown (`drain`) the running child is waited for and its checkpoints put in place
    (when their ledger commit was written), or killed past the limit."""
    ck = Checkpoints(tmp_path)
    dumper = Dumper(ck)
    jobs: list[Due] = big["jobs"][:3]
    child = dumper.start(jobs)
    assert child is not None
    child.ledger_ok = True  # the commit coroutine, cancelled by the shutdown, had set it
    asyncio.run(dumper.drain())
    assert child.done and child.put == [(j.partition, j.offset) for j in jobs] and dumper.child is None
    assert sorted(p.name for p in tmp_path.iterdir()) == ["p0000.ckpt", "p0001.ckpt", "p0002.ckpt"]
    child = dumper.start(big["jobs"])
    assert child is not None
    child.ledger_ok = True
    asyncio.run(dumper.drain(limit=0.0))
    assert child.done and child.put == [] and child.error == "still running after 0 s: killed"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["p0000.ckpt", "p0001.ckpt", "p0002.ckpt"]
