"""A console `Source` over one core `Monitor` fed directly (a replay, a notebook, a test): the
same views and history a streaming worker keeps, without Kafka."""

from __future__ import annotations

from typing import Any

from ..core.step import Step
from ..core.views import MissionView
from ..monitor import Monitor
from .history import Feed, History, MissionHistory

__all__ = ["MonitorSource"]

class MonitorSource:
    """`process` records through the monitor; the console's answers (`console.api`) read this."""

    def __init__(self, monitor: Monitor) -> None:
        self.monitor = monitor
        self.histories = History()
        self.feed = Feed()

    def process(self, raw: str | bytes | dict[str, Any]) -> Step:
        step = self.monitor.feed(raw)
        message = raw if isinstance(raw, bytes) else raw.encode() if isinstance(raw, str) else b""
        self.feed.add(self.histories.take(step, message))
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
