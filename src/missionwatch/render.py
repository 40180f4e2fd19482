"""Out records in readable form for a terminal (`missionwatch explain`, the demo)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from .records import SCHEMA_CONTROL, SCHEMA_ESCALATION, SCHEMA_STRATEGY

__all__ = ["render_events"]


def render_events(events: Sequence[dict[str, Any]], console: Console, *, receipts: bool = False) -> None:
    """Print escalations, controls (and receipts) as they come, then each mission's latest
    receipt. Every value is printed as text, never as markup; a record missing the fields
    it needs is named, not a crash."""
    latest: dict[str, dict[str, Any]] = {}
    n_esc = 0
    for i, e in enumerate(events, 1):
        try:
            n_esc += _render_one(e, console, latest, receipts)
        except (KeyError, TypeError, ValueError, AttributeError, IndexError) as exc:
            console.print(f"[bold red]record {i}[/]: not a readable out record ({_s(type(exc).__name__)}: "
                          f"{_s(exc)})")
    if not n_esc:
        console.print("[bold green]No escalations.[/]")
    for mid, e in sorted(latest.items()):
        try:
            _render_latest(mid, e, console)
        except (KeyError, TypeError, ValueError, AttributeError, IndexError) as exc:
            console.print(f"[bold red]mission {_s(mid)}[/]: its latest receipt is not readable ({_s(exc)})")


def _s(x: object) -> str:
    return escape(str(x))


def _render_one(e: dict[str, Any], console: Console, latest: dict[str, dict[str, Any]], receipts: bool) -> int:
    if not isinstance(e, dict):
        raise TypeError("not a JSON object")
    kind = e.get("schema", "")
    mid = str(e.get("mission_id"))
    if kind == SCHEMA_ESCALATION:
        colour = "red" if e["severity"] == "pause" else "yellow"
        console.print(f"[bold {colour}]ESCALATION[/] ({_s(e['severity'])}) {_s(mid)} seq {_s(e['seq'])} at "
                      f"{_s(e['issued_at'])} [dim]{_s(e['escalation_id'])}[/]")
        console.print(f"  {_s(e['reason'])}")
        console.print(f"  [dim]detector {_s(e['detector'])}, code {_s(e['code'])}, triggered by "
                      f"{_s(e['triggered_by'])}[/]")
        return 1
    if kind == SCHEMA_CONTROL:
        console.print(f"[bold magenta]CONTROL[/] {_s(mid)} -> {_s(e['state'])} (cause {_s(e['cause'])}) "
                      f"at {_s(e['issued_at'])}")
    elif kind == SCHEMA_STRATEGY:
        review = e.get("last_review")
        if isinstance(review, dict) and review != (latest.get(mid) or {}).get("last_review"):
            console.print(f"[bold green]REVIEW[/] {_s(mid)}: {_review(review)}")
        latest[mid] = e
        if receipts:
            console.print(f"[cyan]receipt[/] {_s(mid)} seq {_s(e['seq'])} {_s(e['issued_at'])} "
                          f"status {_s(e['review_status'])}, tactic {_s(e['current_tactic_cluster'])}, "
                          f"{_s(e['window']['actions'])} actions in window")
    return 0


def _review(r: dict[str, Any]) -> str:
    """Who reviewed, when, what and why, in one line."""
    about = f" of {_s(r.get('escalation_id'))}" if r.get("escalation_id") else ""
    note = f': "{_s(r.get("note"))}"' if r.get("note") else ""
    return f"{_s(r.get('decision'))}{about} by {_s(r.get('reviewer'))} at {_s(r.get('occurred_at'))}{note}"


def _render_latest(mid: str, e: dict[str, Any], console: Console) -> None:
    console.print(f"\n[bold]Mission {_s(mid)}[/]: state {_s(e['state'])}, review status "
                  f"[bold]{_s(e['review_status'])}[/], {_s(e['totals']['actions'])} actions, "
                  f"spec {_s(e['spec'])}")
    if e.get("tactics"):
        console.print(f"  doing: {_s(', '.join(map(str, e['tactics'])))}")
    if e.get("cohort_concentration"):
        console.print("  actions concentrate on: " + ", ".join(
            f"{_s(c.get('cohort'))} ({_f(c.get('lift'))}x its share)" for c in e["cohort_concentration"]
            if isinstance(c, dict)))
    if e.get("cohorts_affected"):
        console.print(f"  cohorts affected: {_s(', '.join(map(str, e['cohorts_affected'])))}")
    if isinstance(e.get("last_review"), dict):
        console.print(f"  last review: {_review(e['last_review'])}")
    beyond = Table("metric", "cohort", "value", "n", "reference", "gap [interval]",
                   title="cohorts judged beyond a threshold", title_justify="left")
    for metric, cells in e.get("fairness", {}).items():
        verdicts = Counter(c["verdict"] for c in cells.values())
        console.print(f"  {_s(metric)}: " + ", ".join(f"{n} {_s(v)}" for v, n in sorted(verdicts.items())))
        for cohort, c in cells.items():
            if c["verdict"] == "beyond":
                lo, hi = c["interval"]
                beyond.add_row(_s(metric), _s(cohort), _f(c["estimate"]), _s(c["n"]),
                               f"{_f(c['reference_estimate'])} ({_s(c['reference'])})",
                               f"{_f(c['gap'])} [{_f(lo)}, {_f(hi)}]")
    if beyond.row_count:
        console.print(beyond)
    risks = e.get("risk_signals", {})
    if risks:
        console.print("  risk signals: " + "; ".join(_risk(k, v) for k, v in risks.items()))


def _risk(name: str, v: dict[str, Any]) -> str:
    """One risk signal in words: '+1.8x baseline' where a ratio exists, the reason where the
    signal is unavailable."""
    if v.get("verdict") == "unavailable":
        return f"{_s(name)} unavailable ({_s(v.get('reason', 'no reason given'))})"
    ratio = v.get("ratio")
    times = f", {'+' if ratio > 1 else ''}{ratio:.1f}x baseline" if isinstance(ratio, int | float) else ""
    return f"{_s(name)} {_f(v.get('value'))} vs {_f(v.get('baseline'))}{times} ({_s(v.get('verdict'))})"


def _f(x: float | None) -> str:
    return "-" if x is None else f"{float(x):.3g}"
