"""`missionwatch run` with a core that raises on a marked message, as a bug in the core would.

`Monitor.feed` turns whatever fails inside it into an `internal_error` rejection, so no real
input makes it raise any more; this subclass raises from `feed` itself, which only the
shell's own guards can catch. The settings come from MISSIONWATCH_* variables."""

from __future__ import annotations

from typing import Any

from missionwatch.monitor import Monitor, Step

MARKER = b"plant-a-bug"


class RaisingMonitor(Monitor):
    def feed(self, raw: Any) -> Step:
        text = raw.encode() if isinstance(raw, str) else raw
        if isinstance(text, bytes) and MARKER in text:
            raise RuntimeError("a bug planted by the test")
        return super().feed(raw)


if __name__ == "__main__":
    from missionwatch.stream.app import StreamSettings
    from missionwatch.stream.run import run_worker

    run_worker(StreamSettings(), loglevel="info", monitor=RaisingMonitor)
