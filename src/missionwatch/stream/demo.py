"""`missionwatch demo`: the broker, the monitor, and a simulated agent campaign behind a
gateway that obeys pause signals, on one machine with no set-up."""

from __future__ import annotations

import shutil
from pathlib import Path

__all__ = ["write_demo_specs"]

_DISCOUNT_RULE = 'metric = "discount_rate"\nharm = "lower"\n'


def write_demo_specs(stock: Path, out: Path) -> Path:
    """Copy the stock specs to `out`, with the retention spec's discount fairness rule raised
    from severity "review" to "pause", so a discount gap pauses the mission."""
    out.mkdir(parents=True, exist_ok=True)
    for p in stock.glob("*.toml"):
        shutil.copyfile(p, out / p.name)
    retention = out / "retention.toml"
    text = retention.read_text(encoding="utf-8")
    if text.count(_DISCOUNT_RULE) != 1:
        raise ValueError(f"{stock / 'retention.toml'}: no single discount_rate fairness rule to make pausing")
    retention.write_text(text.replace(_DISCOUNT_RULE, _DISCOUNT_RULE + 'severity = "pause"\n'), encoding="utf-8")
    return out
