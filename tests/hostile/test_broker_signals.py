"""`missionwatch broker` leaves nothing behind: SIGTERM and SIGINT stop it and its two children
(Tansu and the compatibility listener), and on Linux the children die with it even on kill -9.
Checked in /proc, not by asking it."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from missionwatch.stream.broker import free_port, wait_for_port

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")


def stat(pid: int) -> list[str] | None:
    """/proc/PID/stat fields after the command name (state, ppid, pgrp, session, ...), or None."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    return text.rpartition(")")[2].split()


def processes() -> Iterator[tuple[int, list[str]]]:
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and (fields := stat(int(entry.name))) is not None:
            yield int(entry.name), fields


def children(pid: int) -> list[int]:
    return [p for p, fields in processes() if fields[1] == str(pid)]


def running(pid: int) -> bool:
    fields = stat(pid)
    return fields is not None and fields[0] != "Z"  # a zombie has stopped; its reaper is not ours


def in_session(sid: int) -> list[int]:
    return [p for p, fields in processes() if fields[3] == str(sid) and fields[0] != "Z"]


def listening(port: int) -> bool:
    """Does any socket listen on 127.0.0.1/0.0.0.0:`port` (per /proc/net/tcp)?"""
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        local, state = line.split()[1], line.split()[3]
        if state == "0A" and int(local.rpartition(":")[2], 16) == port:
            return True
    return False


def wait_for(predicate: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()


@contextlib.contextmanager
def broker_command(tmp_path: Path, ready: bool) -> Iterator[tuple[subprocess.Popen[bytes], list[int], int]]:
    """`missionwatch broker` on a free port, once it listens (and, if `ready`, has made its
    topics): (the process, its children's pids: Tansu and the compatibility listener, the port).
    Whatever is left is killed after."""
    port = free_port()
    log = tmp_path / f"broker-{port}.log"
    with log.open("wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "missionwatch.cli", "broker", "--port", str(port)],
                                stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    tansu: list[int] = []
    try:
        wait_for_port(port, 60, proc)  # the listener is up, after Tansu: both have been started
        tansu.extend(children(proc.pid))
        assert len(tansu) == 2, f"Tansu and the compatibility listener expected, found {tansu}"
        if ready:
            assert wait_for(lambda: "Ctrl-C stops it" in log.read_text(), 60), log.read_text()
        yield proc, tansu, port
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)
        for pid in tansu:
            if running(pid):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)


def assert_nothing_left(kids: list[int], port: int, timeout: float) -> None:
    for pid in kids:
        assert wait_for(lambda pid=pid: not running(pid), timeout), f"child {pid} outlived the command"
        assert in_session(pid) == [], f"a process of child {pid}'s session is left"
    assert wait_for(lambda: not listening(port), timeout), f"something still listens on {port}"


@pytest.mark.parametrize("ready", [True, False], ids=["running", "starting"])
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_signal_stops_the_broker_and_its_tansu(sig: signal.Signals, ready: bool, tmp_path: Path) -> None:
    with broker_command(tmp_path, ready) as (proc, tansu, port):
        assert all(running(pid) for pid in tansu) and listening(port)
        os.kill(proc.pid, sig)  # the command alone, as a service manager or `kill` does
        assert proc.wait(10) == 0
        assert_nothing_left(tansu, port, timeout=1)


def test_tansu_dies_with_the_command_even_on_kill_9(tmp_path: Path) -> None:
    with broker_command(tmp_path, ready=True) as (proc, tansu, port):
        os.kill(proc.pid, signal.SIGKILL)  # no handler runs: the kernel's parent-death signal does it
        proc.wait(10)
        assert_nothing_left(tansu, port, timeout=5)


HANDLED_IN_EXEC = """
import sys
from missionwatch.stream.broker import interrupt_on_signals
try:
    with interrupt_on_signals():
        # the signal lands while code made from source text runs, as it does when it lands
        # while a module's dataclasses are being made (the broker's first import of aiokafka)
        exec("import os, signal\\nos.kill(os.getpid(), signal.SIG{sig})\\nfor _ in range(10**7): pass")
    print("not interrupted")
except KeyboardInterrupt:
    print("handled")
"""


@pytest.mark.parametrize("sig", ["INT", "TERM"])
@pytest.mark.parametrize("how", [["-c"], ["-m", "runpy_target"]], ids=["-c", "-m"])
def test_a_handled_interrupt_exits_as_the_command_says(sig: str, how: list[str], tmp_path: Path) -> None:
    """The flake this file once had: `broker` caught the interrupt, stopped Tansu, returned 0,
    and yet died by SIGINT, because CPython 3.11 remembered the interrupt as unhandled."""
    code = HANDLED_IN_EXEC.format(sig=sig)
    if how[0] == "-m":
        (tmp_path / "runpy_target.py").write_text(code)
        argv = [sys.executable, *how]
    else:
        argv = [sys.executable, "-c", code]
    done = subprocess.run(argv, capture_output=True, timeout=60, cwd=tmp_path)
    assert (done.returncode, done.stdout.decode()) == (0, "handled\n"), done.stderr.decode()
