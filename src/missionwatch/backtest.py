"""Backtests: the same past receipts run under several specs, reported side by side per rule.

For each spec: when each rule would first have escalated (event time, and actions of the
mission since its start), how many escalations it raised, the smallest gap its fairness
verdicts could detect as the receipts went (the minimum detectable gap over cohorts, at a
quarter, half, three quarters and all of the receipts), and the verdicts at the end. With the
ground truth `simulate` writes (`planted.json`), the delay after each planted change.

Each run is a fresh core `Monitor` fed the input in file order (what `replay` does), without
writing anything: records in, a report out.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .monitor import Monitor
from .records import SCHEMA_ESCALATION, SCHEMA_STRATEGY

__all__ = ["RuleReport", "SpecReport", "backtest", "planted_changes"]


@dataclass
class RuleReport:
    rule: str
    """The escalating detector (`fairness:discount_rate`, `mix:template`, ...)."""
    first_at: str | None = None
    first_actions: int | None = None
    """Actions of the mission accepted up to and including the one that tipped it."""
    first_cohort: str | None = None
    escalations: int = 0
    min_detectable_gap: list[float | None] = field(default_factory=list)
    """At 25%, 50%, 75% and 100% of the mission's strategy receipts (fairness rules)."""
    verdicts: dict[str, int] = field(default_factory=dict)
    """Verdicts at the last receipt, counted over cohorts (fairness rules)."""
    delay_actions: int | None = None
    """With a planted change: actions from the change to the first escalation."""


@dataclass
class SpecReport:
    label: str
    mission: str
    actions: int = 0
    rules: dict[str, RuleReport] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"spec": self.label, "mission": self.mission, "actions": self.actions,
                "rules": {k: vars(v) for k, v in sorted(self.rules.items())}}


def _quarters(receipts: list[dict[str, Any]], metric: str) -> list[float | None]:
    out: list[float | None] = []
    for q in (0.25, 0.5, 0.75, 1.0):
        if not receipts:
            out.append(None)
            continue
        r = receipts[max(0, round(q * len(receipts)) - 1)]
        gaps = [v.get("min_detectable_gap") for v in (r.get("fairness") or {}).get(metric, {}).values()]
        finite = [g for g in gaps if isinstance(g, int | float)]
        out.append(round(min(finite), 6) if finite else None)
    return out


def _run(monitor: Monitor, lines: Iterable[bytes], mission: str | None,
         tick: Callable[[int], None]) -> tuple[str | None, int, list[dict[str, Any]], list[tuple[dict[str, Any], int]]]:
    actions: Counter[str] = Counter()
    receipts: dict[str, list[dict[str, Any]]] = {}
    escalations: list[tuple[dict[str, Any], int]] = []
    for line in lines:
        step = monitor.feed(line)
        tick(len(line))
        for a in step.accepted:
            if a.kind == "action" and not a.duplicate:
                actions[str(a.record.get("mission_id"))] += 1
        for rec in step.out:
            mid = str(rec.get("mission_id"))
            if rec.get("schema") == SCHEMA_STRATEGY:
                receipts.setdefault(mid, []).append(rec)
            elif rec.get("schema") == SCHEMA_ESCALATION:
                escalations.append((rec, actions[mid]))
    chosen = mission or (max(actions, key=lambda m: (actions[m], m)) if actions else None)
    return (chosen, actions[chosen] if chosen else 0, receipts.get(chosen or "", []),
            [(e, n) for e, n in escalations if e.get("mission_id") == chosen])


PLANTED_FOR = {"fairness": "discount_gap", "mix": "new_template", "novelty": "new_template",
               "followup": "followup_rise", "risk": "complaint_spike"}
"""Which planted change (planted.json `kind`) a rule's escalations answer, by detector family."""


def _planted_at(rule: str, planted: dict[str, Any] | None) -> int | None:
    if not planted:
        return None
    changes = {c.get("kind"): c.get("from_action") for c in planted.get("changes", [])}
    at = changes.get(PLANTED_FOR.get(rule.partition(":")[0], ""))
    return at if isinstance(at, int) else None


def backtest(label: str, monitor: Monitor, lines: Iterable[bytes], *, mission: str | None = None,
             planted: dict[str, Any] | None = None, tick: Callable[[int], None] = lambda n: None) -> SpecReport:
    """Run `lines` through `monitor` and report on `mission` (default: the one with most actions).
    `planted`: the campaign's ground truth (`planted_changes`), for the delays after each change."""
    chosen, n_actions, receipts, escalations = _run(monitor, lines, mission, tick)
    report = SpecReport(label, chosen or "", n_actions)
    view = monitor.view(chosen) if chosen else None
    found = monitor.specs.get(view.spec) if view is not None else None
    rules = {f"fairness:{r.metric}" for r in (found.fairness if found else ())}
    for rule in sorted(rules):
        report.rules[rule] = RuleReport(rule)
    for esc, actions_so_far in escalations:
        r = report.rules.setdefault(str(esc.get("detector")), RuleReport(str(esc.get("detector"))))
        r.escalations += 1
        if r.first_at is None:
            r.first_at, r.first_actions = esc.get("issued_at"), actions_so_far
            r.first_cohort = (esc.get("evidence") or {}).get("cohort")
            at = _planted_at(r.rule, planted)
            if at is not None:
                r.delay_actions = actions_so_far - at
    last = receipts[-1] if receipts else {}
    for name, r in report.rules.items():
        if name.startswith("fairness:"):
            metric = name.partition(":")[2]
            r.min_detectable_gap = _quarters(receipts, metric)
            r.verdicts = dict(sorted(Counter(v.get("verdict") for v in (last.get("fairness") or {})
                                             .get(metric, {}).values()).items()))
    return report


def planted_changes(path: Path) -> dict[str, Any]:
    """The ground truth `simulate` wrote beside a campaign (planted.json)."""
    doc = json.loads(path.read_text())
    if not isinstance(doc, dict) or not isinstance(doc.get("changes"), list):
        raise ValueError(f"{path}: not a planted.json written by missionwatch simulate")
    return doc
