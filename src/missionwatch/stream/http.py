"""The service's HTTP answers (CONTRACT 4): /healthz, /metrics, mission status."""

from __future__ import annotations

from typing import Any

from .core import IN, StreamCore

__all__ = ["healthz", "metrics_text", "parse_metrics", "status"]


def healthz(app: Any, core: StreamCore) -> tuple[dict[str, Any], int]:
    ok = not getattr(app, "should_stop", False)
    return {"status": "ok" if ok else "stopping", "partitions": sorted(core.active)}, (200 if ok else 503)


def status(core: StreamCore, mission_id: str, what: str = "status") -> tuple[dict[str, Any], int]:
    found = core.status(mission_id) if what == "status" else core.ledger(mission_id)
    if found is None:
        return {"mission_id": mission_id, "error": "no such mission on this worker "
                "(unknown, or its partition is served by another worker)"}, 404
    return found, 200


def _lag(app: Any, core: StreamCore) -> dict[int, int]:
    from faust.types import TP

    out: dict[int, int] = {}
    for p in sorted(core.active):
        nxt = core.next_offset[p]
        try:
            hw = app.consumer.highwater(TP(IN, p))
        except Exception:  # not started yet, or no fetch for this partition so far
            continue
        if hw is not None:
            out[p] = max(int(hw) - nxt, 0)
    return out


async def metrics_text(app: Any, core: StreamCore) -> str:
    """Prometheus text exposition format 0.0.4."""
    m = core.metrics
    lines = [
        "# HELP missionwatch_messages_in_total Messages consumed from missionwatch.in.",
        "# TYPE missionwatch_messages_in_total counter",
        f"missionwatch_messages_in_total {m.messages_in}",
        "# HELP missionwatch_records_in_total Records in those messages (batch items counted one by one).",
        "# TYPE missionwatch_records_in_total counter",
        f"missionwatch_records_in_total {m.records_in}",
        "# HELP missionwatch_rejected_total Rejected messages and batch items, by reason code.",
        "# TYPE missionwatch_rejected_total counter",
        *(f'missionwatch_rejected_total{{code="{c}"}} {n}' for c, n in sorted(m.rejected.items())),
        "# HELP missionwatch_escalations_total Escalations issued.",
        "# TYPE missionwatch_escalations_total counter",
        f"missionwatch_escalations_total {m.escalations}",
        "# HELP missionwatch_controls_total Control signals issued.",
        "# TYPE missionwatch_controls_total counter",
        f"missionwatch_controls_total {m.controls}",
        "# HELP missionwatch_strategy_receipts_total Strategy receipts issued.",
        "# TYPE missionwatch_strategy_receipts_total counter",
        f"missionwatch_strategy_receipts_total {m.strategy_receipts}",
        "# HELP missionwatch_replayed_messages_total Messages fed again to rebuild state after an assignment.",
        "# TYPE missionwatch_replayed_messages_total counter",
        f"missionwatch_replayed_messages_total {m.replayed}",
        "# HELP missionwatch_processing_seconds Time the core spent per message.",
        "# TYPE missionwatch_processing_seconds summary",
        f"missionwatch_processing_seconds_sum {m.latency_sum:.6f}",
        f"missionwatch_processing_seconds_count {m.latency_count}",
        "# HELP missionwatch_consumer_lag Messages of missionwatch.in not yet processed, per partition.",
        "# TYPE missionwatch_consumer_lag gauge",
        *(f'missionwatch_consumer_lag{{partition="{p}"}} {n}' for p, n in _lag(app, core).items()),
        "# HELP missionwatch_partitions Input partitions served by this worker.",
        "# TYPE missionwatch_partitions gauge",
        f"missionwatch_partitions {len(core.active)}",
    ]
    return "\n".join(lines) + "\n"


def parse_metrics(text: str) -> dict[str, float]:
    """`metrics_text` read back: {'name' or 'name{labels}': value}, comments left out."""
    return {ln.rsplit(" ", 1)[0]: float(ln.rsplit(" ", 1)[1]) for ln in text.splitlines()
            if ln and not ln.startswith("#")}
