"""Start the service: the embedded broker when no broker is given, the topics, the Faust worker."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator

from ..monitor import Monitor
from .app import StreamSettings, make_app
from .broker import EmbeddedBroker, bootstrap_of, create_topics

__all__ = ["broker_for", "run_worker"]


@contextlib.contextmanager
def broker_for(settings: StreamSettings) -> Iterator[str]:
    """The bootstrap address to use: `settings.broker`, or an embedded broker started for the
    duration (stopped on exit). The topics exist when it yields."""
    if settings.broker:
        boot = bootstrap_of(settings.broker)
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
        logging.getLogger("missionwatch").setLevel(loglevel.upper())
        worker = faust.Worker(app, loglevel=loglevel, quiet=loglevel != "info", override_logging=loglevel == "info")
        worker.execute_from_commandline()
