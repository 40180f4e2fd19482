"""The service's HTTP answers (CONTRACT 4): /healthz, /metrics, mission status."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .core import IN, StreamCore

__all__ = ["Health", "healthz", "metrics_text", "parse_metrics", "status"]


@dataclass
class Health:
    """What the shell knows of itself, for /healthz (the core's counts are in its metrics)."""

    agent_running: bool = False
    agent_crash: str | None = None
    """Why the agent crashed, if it ever did: messages it held may have been skipped."""
    publish_failing: str | None = None
    """The error of a publish being retried now, if any."""
    catching_up: set[int] = field(default_factory=set)
    """Partitions assigned here whose state is still being rebuilt from the log."""


def _down(app: Any, health: Health) -> str | None:
    """Why this worker is not consuming, or None."""
    if getattr(app, "crashed", False):
        return f"the app crashed: {getattr(app, 'crash_reason', None)!r}"
    if health.agent_crash is not None:
        return (f"the agent crashed ({health.agent_crash}); messages it held may have been skipped: "
                "restart the worker (its catch-up rebuilds the state from the log)")
    if not health.agent_running:
        return "the agent is not running"
    consumer = getattr(app, "_consumer", None)
    if consumer is not None and getattr(consumer, "crashed", False):
        return f"the consumer crashed: {getattr(consumer, 'crash_reason', None)!r}"
    return None


def healthz(app: Any, core: StreamCore, health: Health | None = None) -> tuple[dict[str, Any], int]:
    """`ok` (200): the agent consumes and nothing needs a person; `degraded` (200): it consumes,
    but the monitor failed on some messages (each rejected as `internal_error`) or publishing
    fails and is being retried; `down` (503): the agent crashed or is not running, or the
    consumer crashed; `stopping` (503): the worker is shutting down."""
    health = health or Health(agent_running=True)
    m = core.metrics
    problems: list[str] = []
    down = _down(app, health)
    if getattr(app, "should_stop", False) and down is None:
        state = "stopping"
    elif down is not None:
        state = "down"
        problems.append(down)
    else:
        if m.internal_errors:
            problems.append(f"the monitor failed on {m.internal_errors} message(s), each rejected as "
                            "internal_error (the last: last_internal_error); please report it")
        if health.publish_failing is not None:
            problems.append(f"publishing fails and is being retried: {health.publish_failing}")
        state = "degraded" if problems else "ok"
    body = {"status": state, "partitions": sorted(core.active), "catching_up": sorted(health.catching_up),
            "lag": _lag(app, core), "internal_errors": m.internal_errors,
            "last_internal_error": m.last_internal_error, "problems": problems}
    return body, (200 if state in ("ok", "degraded") else 503)


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
        "# HELP missionwatch_internal_errors_total Messages the monitor failed on (rejected as "
        "internal_error), live or during a catch-up.",
        "# TYPE missionwatch_internal_errors_total counter",
        f"missionwatch_internal_errors_total {m.internal_errors}",
        "# HELP missionwatch_too_large_total Out records too large to publish, replaced by a rejection.",
        "# TYPE missionwatch_too_large_total counter",
        f"missionwatch_too_large_total {m.too_large}",
        "# HELP missionwatch_partitions Input partitions served by this worker.",
        "# TYPE missionwatch_partitions gauge",
        f"missionwatch_partitions {len(core.active)}",
    ]
    return "\n".join(lines) + "\n"


def parse_metrics(text: str) -> dict[str, float]:
    """`metrics_text` read back: {'name' or 'name{labels}': value}, comments left out."""
    return {ln.rsplit(" ", 1)[0]: float(ln.rsplit(" ", 1)[1]) for ln in text.splitlines()
            if ln and not ln.startswith("#")}
