"""Start the service: the embedded broker when no broker is given, the topics, the Faust worker."""

from __future__ import annotations

import contextlib
import gc
import logging
import socket
from collections.abc import Iterator

from ..monitor import Monitor
from .app import StreamSettings, make_app
from .broker import EmbeddedBroker, bootstrap_of, create_topics

__all__ = ["broker_for", "run_worker"]

log = logging.getLogger("missionwatch.stream")


def _listening(port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.5):
        return True
    return False


@contextlib.contextmanager
def broker_for(settings: StreamSettings) -> Iterator[str]:
    """The bootstrap address to use: `settings.broker`; else the broker already listening on
    127.0.0.1:`broker_port` (as `missionwatch broker` starts one, CONTRACT 3's default); else
    an embedded broker started for the duration (stopped on exit). The topics exist when it
    yields."""
    if settings.broker or _listening(settings.broker_port):
        boot = bootstrap_of(settings.broker or f"127.0.0.1:{settings.broker_port}")
        if not settings.broker:
            log.warning("a broker already listens on %s: using it (pass --broker to name one)", boot)
        create_topics(boot, settings.partitions)
        yield boot
        return
    with EmbeddedBroker(port=settings.broker_port) as b:
        create_topics(b.bootstrap, settings.partitions)
        yield b.bootstrap


def run_worker(settings: StreamSettings, loglevel: str = "warning", monitor: type[Monitor] = Monitor) -> None:
    """Run until Ctrl-C or SIGTERM (Faust's worker handles both and stops cleanly). `monitor`:
    the core's class (tests plant a failing one)."""
    import faust

    with broker_for(settings) as boot:
        app, _ = make_app(settings, bootstrap=boot, monitor=monitor)
        gc.set_threshold(10_000, *gc.get_threshold()[1:])  # the core's state is long-lived: fewer young collections
        logging.getLogger("missionwatch").setLevel(loglevel.upper())
        worker = faust.Worker(app, loglevel=loglevel, quiet=loglevel != "info", override_logging=loglevel == "info")
        worker.execute_from_commandline()
