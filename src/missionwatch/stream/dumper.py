"""Checkpoints taken off the event loop: a forked child pickles and writes them, as Redis's
BGSAVE does, while the worker goes on.

`fork()` gives the child the partitions' states as they stand at that instant (the pages are
shared copy-on-write), so what it writes is exactly the state as of the offsets noted then,
however the worker's states change meanwhile. The worker's event loop stalls only for the fork
itself (copying the page tables: about 0.1 s with 10^6 records in a partition), not for the
pickling (tens of seconds then: benchmarks/RESULTS.md, "Recovery after kill -9").

The worker has other threads (Kafka's consumer, the ledger's writer), whose locks the child
inherits as they were at the fork; so the child touches nothing of the worker but the states
and the checkpoint directory. It runs no event loop, Kafka client, logging, OpenSSL (its
SHA-256 is Python's builtin one) or atexit handler; it resets the signal handlers the worker
installed, dies with the worker (PR_SET_PDEATHSIG on Linux: a worker killed with -9 leaves no
child behind), closes its copies of the descriptors it inherited (the web server's socket, the
live ledgers' locks, Kafka's sockets), writes each partition's checkpoint to
`.tmp-pPPPP.ckpt.<pid>` in the checkpoint directory, fsyncs it, and leaves with `os._exit`:
status 0 when all are written, else 1 with the reason on a pipe. The worker reaps it without
blocking (`waitpid(WNOHANG)` every `interval` seconds, no SIGCHLD handler) and only then, and
only when the live ledger's commit taken with it has been written (a checkpoint is never ahead
of the ledger), renames the files into place (Redis's child renames its own file: here the
worker does, after the ledger): then the checkpoints count as taken. A child that fails, is
killed, or runs past `timeout` (then it is killed) leaves the previous checkpoints as they
were; its files are deleted and the log says why. One child at a time: a checkpoint due
meanwhile waits for the next turn. At shutdown the worker waits for a running child (two
minutes at most).

Memory: pickling updates the reference count of every object it visits, so the child ends up
with its own copy of most pages of the states it writes: during a dump the worker and its
child together hold up to about twice the states' memory. The worker's garbage collector is
frozen (`gc.freeze`) while a child runs, so that its collections do not copy pages too.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import hashlib
import importlib
import logging
import os
import signal
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn

from .broker import die_with_parent
from .checkpoint import Checkpoints, Due, fingerprint

__all__ = ["Child", "Dumper"]

log = logging.getLogger("missionwatch.stream")

_MAX_FD = os.sysconf("SC_OPEN_MAX") if hasattr(os, "sysconf") else 65536
_RESET = ("SIGTERM", "SIGHUP", "SIGQUIT", "SIGUSR1", "SIGUSR2")
"""Signals the child takes by default (the worker's handlers are the worker's); SIGINT it ignores:
an interrupt stops the worker, which then waits for its child."""


@dataclass
class Child:
    """A dump under way: its process, and per partition the offset and the temporary file."""

    pid: int
    files: list[tuple[int, int, Path]]
    pipe: int
    started: float
    deadline: float
    """When it is killed if still running (time.monotonic)."""
    ledger_ok: bool | None = None
    """Whether the live ledger's commit taken with the dump was written (None: not known yet)."""
    done: bool = False
    put: list[tuple[int, int]] = field(default_factory=list)
    """Once done: (partition, offset) of each checkpoint put in place."""
    error: str | None = None


def _sha256() -> Any:
    """SHA-256 without OpenSSL (whose locks another thread of the worker may have held at the
    fork); OpenSSL's where Python lacks its builtin one."""
    for name in ("_sha256", "_sha2"):
        with contextlib.suppress(ImportError):
            return importlib.import_module(name).sha256
    return hashlib.sha256


class Dumper:
    """Takes the checkpoints of `checkpoints` in forked children, one at a time."""

    def __init__(self, checkpoints: Checkpoints, *, timeout: float = 3600.0, interval: float = 0.05) -> None:
        self.checkpoints = checkpoints
        self.timeout = timeout
        """Longest a child may run before it is killed (a child that hangs must not stop checkpoints)."""
        self.interval = interval
        """Seconds between two looks at a running child."""
        self.child: Child | None = None
        self._sha256 = _sha256()
        self._death = die_with_parent()  # made here: the child then loads nothing
        for tmp in checkpoints.directory.glob(".tmp-p*.ckpt.*"):  # a dump cut short by a kill
            if not _alive(tmp.suffix[1:]):
                tmp.unlink(missing_ok=True)

    def temp(self, partition: int, pid: int) -> Path:
        return self.checkpoints.directory / f".tmp-{self.checkpoints.path(partition).name}.{pid}"

    def start(self, due: list[Due]) -> Child | None:
        """Fork a child that writes the checkpoints of `due` (their states as of now); None when
        there is nothing to do, a child is still running, or the fork failed (logged)."""
        if not due or self.child is not None:
            return None
        fps = [fingerprint(d.monitor) for d in due]  # here: it asks OpenSSL for the monitor's key
        r, w = os.pipe()
        parent = os.getpid()
        gc.freeze()
        try:
            with warnings.catch_warnings():  # Python 3.12+ warns of forking with threads: see above
                warnings.simplefilter("ignore", DeprecationWarning)
                pid = os.fork()
        except OSError as exc:
            gc.unfreeze()
            os.close(r)
            os.close(w)
            log.error("checkpoints not taken: fork failed (%s); the previous ones stay", exc)
            return None
        if pid == 0:
            self._child(due, fps, w, parent)
        os.close(w)
        os.set_blocking(r, False)
        now = time.monotonic()
        self.child = Child(pid, [(d.partition, d.offset, self.temp(d.partition, pid)) for d in due], r, now,
                           now + self.timeout)
        return self.child

    def _child(self, due: list[Due], fps: list[str], w: int, parent: int) -> NoReturn:
        """The child's whole life: write the checkpoints, then `os._exit`."""
        code = 1
        try:
            gc.disable()
            self._detach(w, parent)
            for d, fp in zip(due, fps, strict=True):
                with open(self.temp(d.partition, os.getpid()), "wb") as f:
                    self.checkpoints.write_file(f, d, fp, self._sha256)
                    f.flush()
                    os.fsync(f.fileno())
            code = 0
        except BaseException as exc:  # the child reports everything, then exits
            with contextlib.suppress(BaseException):
                os.write(w, f"{type(exc).__name__}: {exc}"[:2000].encode("utf-8", "replace"))
        finally:
            os._exit(code)

    def _detach(self, keep: int, parent: int) -> None:
        """Leave the worker's signal handlers and descriptors alone; die with the worker."""
        with contextlib.suppress(ValueError):  # not the main thread: the handlers stay
            signal.set_wakeup_fd(-1)  # the worker's event loop's: a signal here must not wake it
            signal.signal(signal.SIGINT, signal.SIG_IGN)
            for name in _RESET:
                if hasattr(signal, name):
                    signal.signal(getattr(signal, name), signal.SIG_DFL)
        if self._death is not None:
            self._death()
        if os.getppid() != parent:
            raise RuntimeError("the worker is gone")
        os.closerange(3, keep)
        os.closerange(keep + 1, _MAX_FD)

    def poll(self) -> None:
        """Reap the running child if it has ended (killed first if past `timeout`), and settle it:
        its checkpoints put in place when it wrote them all and the ledger's commit was written,
        else deleted. Never blocks (but for the reaping of a child just killed)."""
        c = self.child
        if c is None:
            return
        try:
            pid, status = os.waitpid(c.pid, os.WNOHANG)
            if pid == 0 and time.monotonic() > c.deadline:
                os.kill(c.pid, signal.SIGKILL)
                pid, status = os.waitpid(c.pid, 0)
                c.error = f"still running after {c.deadline - c.started:.0f} s: killed"
            if pid == 0:
                return
            code = os.waitstatus_to_exitcode(status)
        except ChildProcessError:  # reaped by someone else: how it ended is not known
            code = -1
        self.child = None
        gc.unfreeze()
        self._settle(c, code)

    def _settle(self, c: Child, code: int) -> None:
        said = b""
        with contextlib.suppress(OSError):
            said = os.read(c.pipe, 4096)
        os.close(c.pipe)
        c.done = True
        seconds = time.monotonic() - c.started
        parts = ", ".join(str(p) for p, _, _ in c.files)
        if code != 0 or not c.ledger_ok:
            why = c.error or (said.decode("utf-8", "replace") if said else None) or (
                f"killed by signal {-code}" if code < 0 else f"exit status {code}" if code else
                "the live ledger's commit taken with it was not written")
            log.error("checkpoints of partitions %s not taken (%s); the previous ones stay", parts, why)
            for _, _, tmp in c.files:
                tmp.unlink(missing_ok=True)
            return
        for p, offset, tmp in c.files:
            try:
                os.replace(tmp, self.checkpoints.path(p))
                c.put.append((p, offset))
            except OSError as exc:
                log.error("partition %d: its checkpoint could not be put in place (%s)", p, exc)
        _sync_dir(self.checkpoints.directory)
        log.info("checkpoints of partitions %s taken in %.2f s (in child %d)", parts, seconds, c.pid)

    async def wait(self, c: Child) -> list[tuple[int, int]]:
        """Once `c` is done (without blocking the loop): the checkpoints it put in place."""
        while not c.done:
            if self.child is not c:  # a child of a previous life: not ours to settle
                return c.put
            self.poll()
            if not c.done:
                await asyncio.sleep(self.interval)
        return c.put

    async def settle(self, c: Child, ledger_ok: bool) -> list[tuple[int, int]]:
        """`wait`, `c`'s ledger commit written (`ledger_ok`) or not."""
        c.ledger_ok = ledger_ok
        return await self.wait(c)

    async def drain(self, limit: float = 120.0) -> None:
        """Wait for the running child, if any, `limit` seconds at most: then it is killed (at shutdown)."""
        c = self.child
        if c is not None:
            c.deadline = min(c.deadline, time.monotonic() + limit)
            await self.wait(c)


def _alive(pid: str) -> bool:
    try:
        os.kill(int(pid), 0)
    except (ValueError, ProcessLookupError):
        return False
    except PermissionError:
        return True
    return True


def _sync_dir(directory: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
