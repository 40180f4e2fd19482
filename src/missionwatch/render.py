"""Out records in readable form for a terminal (`missionwatch explain`, the demo)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any

from rich.console import Console
from rich.table import Table

from .records import SCHEMA_CONTROL, SCHEMA_ESCALATION, SCHEMA_STRATEGY

__all__ = ["render_events"]


def render_events(events: Sequence[dict[str, Any]], console: Console, *, receipts: bool = False) -> None:
    latest: dict[str, dict[str, Any]] = {}
    n_esc = 0
    for e in events:
        kind = e.get("schema", "")
        mid = str(e.get("mission_id"))
        if kind == SCHEMA_ESCALATION:
            n_esc += 1
            colour = "red" if e["severity"] == "pause" else "yellow"
            console.print(f"[bold {colour}]ESCALATION[/] ({e['severity']}) {mid} seq {e['seq']} at "
                          f"{e['issued_at']} [dim]{e['escalation_id']}[/]")
            console.print(f"  {e['reason']}")
            console.print(f"  [dim]detector {e['detector']}, code {e['code']}, triggered by "
                          f"{e['triggered_by']}[/]")
        elif kind == SCHEMA_CONTROL:
            console.print(f"[bold magenta]CONTROL[/] {mid} -> {e['state']} (cause {e['cause']}) "
                          f"at {e['issued_at']}")
        elif kind == SCHEMA_STRATEGY:
            latest[mid] = e
            if receipts:
                console.print(f"[cyan]receipt[/] {mid} seq {e['seq']} {e['issued_at']} "
                              f"status {e['review_status']}, tactic {e['current_tactic_cluster']}, "
                              f"{e['window']['actions']} actions in window")
    if not n_esc:
        console.print("[bold green]No escalations.[/]")
    for mid, e in sorted(latest.items()):
        console.print(f"\n[bold]Mission {mid}[/]: state {e['state']}, review status "
                      f"[bold]{e['review_status']}[/], {e['totals']['actions']} actions, "
                      f"spec {e['spec']}")
        if e.get("cohorts_affected"):
            console.print(f"  cohorts affected: {', '.join(e['cohorts_affected'])}")
        beyond = Table("metric", "cohort", "value", "n", "reference", "gap [interval]",
                       title="cohorts judged beyond a threshold", title_justify="left")
        for metric, cells in e.get("fairness", {}).items():
            verdicts = Counter(c["verdict"] for c in cells.values())
            console.print(f"  {metric}: " + ", ".join(f"{n} {v}" for v, n in sorted(verdicts.items())))
            for cohort, c in cells.items():
                if c["verdict"] == "beyond":
                    lo, hi = c["interval"]
                    beyond.add_row(metric, cohort, _f(c["estimate"]), str(c["n"]),
                                   f"{_f(c['reference_estimate'])} ({c['reference']})",
                                   f"{_f(c['gap'])} [{_f(lo)}, {_f(hi)}]")
        if beyond.row_count:
            console.print(beyond)
        risks = e.get("risk_signals", {})
        if risks:
            console.print("  risk signals: " + "; ".join(
                f"{k} {_f(v['value'])} vs {_f(v['baseline'])} ({v['verdict']})" for k, v in risks.items()))


def _f(x: float | None) -> str:
    return "-" if x is None else f"{x:.3g}"
