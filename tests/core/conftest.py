"""What the core's tests share beyond tests/conftest.py: a mission with a real fairness gap."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from missionwatch.monitor import Monitor
from missionwatch.signing import Signer
from missionwatch.spec import SpecRegistry
from tests.conftest import SPECS, action, feed, registration


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


def fed_out(registry: SpecRegistry, records: Iterable[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    """Feed unsigned `records` to a fresh monitor (none may be rejected); its out records of
    one kind: 'strategy', 'escalation' or 'control'."""
    m = Monitor(registry, signer=Signer.generate("m"), allow_unsigned=True)
    out = []
    for r in records:
        step = m.feed(r)
        assert not step.rejected, step.rejected
        out += step.out
    return of_kind(out, kind)


def of_kind(out: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    """The out records of one kind: 'strategy', 'escalation' or 'control'."""
    return [o for o in out if o["schema"] == f"missionwatch/{kind}@1"]


def short_baseline_specs(directory: Path, actions: int = 10) -> SpecRegistry:
    """The stock specs with a baseline (and receipt cadence) of `actions` actions instead of
    2,000 and 1,000, written to `directory`."""
    for name, stock in (("retention", 2000), ("default", 1000)):
        text = (SPECS / f"{name}.toml").read_text()
        for section in ("baseline", "cadence"):
            old = f"[{section}]\nactions = {stock}"
            assert old in text, (name, old)
            text = text.replace(old, f"[{section}]\nactions = {actions}")
        (directory / f"{name}.toml").write_text(text)
    return SpecRegistry.load_dir(directory)
