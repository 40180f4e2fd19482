"""A console `Source` over one core `Monitor` fed directly (a replay, a notebook, a test): the
same views and history a streaming worker keeps, without Kafka."""

from __future__ import annotations

from collections import deque
from typing import Any

from ..core.step import Step
from ..core.views import MissionView
from ..monitor import Monitor
from .history import History, MissionHistory

__all__ = ["MonitorSource"]

FEED_KEPT = 5000


class MonitorSource:
    """`feed` records to the monitor; the console's answers (`console.api`) read this."""

    def __init__(self, monitor: Monitor) -> None:
        self.monitor = monitor
        self.histories = History()
        self.feed_events: deque[tuple[int, dict[str, Any]]] = deque(maxlen=FEED_KEPT)
        self.feed_seq = 0

    def feed(self, raw: str | bytes | dict[str, Any]) -> Step:
        step = self.monitor.feed(raw)
        message = raw if isinstance(raw, bytes) else raw.encode() if isinstance(raw, str) else b""
        for event in self.histories.take(step, message):
            self.feed_seq += 1
            self.feed_events.append((self.feed_seq, event))
        return step

    def views(self) -> list[MissionView]:
        return [v for mid in self.monitor.mission_ids() if (v := self.monitor.view(mid)) is not None]

    def view(self, mission_id: str) -> MissionView | None:
        return self.monitor.view(mission_id)

    def history(self, mission_id: str) -> MissionHistory | None:
        return self.histories.get(mission_id)

    def ledger_rows(self, mission_id: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]]] | None:
        if mission_id not in self.monitor.missions:
            return None
        return self.monitor.ledger_rows(mission_id), self.monitor.ledger_totals(mission_id)

    def review_outcome(self, review_id: str) -> dict[str, Any] | None:
        return self.histories.outcomes.get(review_id)

    def events_after(self, seq: int) -> list[tuple[int, dict[str, Any]]]:
        return [(n, e) for n, e in self.feed_events if n > seq]
