"""What the core's tests share beyond tests/conftest.py: a mission with a real fairness gap."""

from __future__ import annotations

from typing import Any

from missionwatch.monitor import Monitor
from missionwatch.signing import Signer
from tests.conftest import action, feed, registration


def gap_mission(monitor: Monitor, gate: Signer, n: int = 3000) -> list[dict[str, Any]]:
    """A registered retention mission where age_band=65+ never gets a discount; its out records."""
    out = []
    out += feed(monitor, gate, registration()).out
    for i in range(n):
        old = i % 4 == 0
        cohort = {"segment": "smb", "tenure_band": "m4-12", "age_band": "65+" if old else "35-49",
                  "region": "north"}
        kind = "offer.discount" if (i % 2 == 1 and not old) else "email.send"
        attrs = {"discount_pct": 10.0} if kind == "offer.discount" else {"template": "renewal-v1"}
        out += feed(monitor, gate, action(i, action_type=kind, subject=f"c-{i}", cohort=cohort, **attrs)).out
    return out


def of_kind(out: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    """The out records of one kind: 'strategy', 'escalation' or 'control'."""
    return [o for o in out if o["schema"] == f"missionwatch/{kind}@1"]
