"""One shared object for each small whole-numbered float.

A monitor keeps hundreds of running sums per mission (counts of outcomes, sums of squares,
ledger measures), and most of them are whole numbers: 1.0, 2.0, 25.0. Python makes a new
24-byte float object for every result, so 10,000 missions held ~120 separate objects each of
values they share (1.0 alone ~40 times a mission). `one` returns the one object kept for such a
value, which a sum stored for long is replaced by. Values are unchanged, and so are types (an
int stays an int) and the sign of zero (0.0 and -0.0 are not in the table: they pass as they are).
"""

from __future__ import annotations

from typing import TypeVar

__all__ = ["LARGEST", "one"]

LARGEST = 4096
"""Whole-numbered floats from -LARGEST to LARGEST (but 0) are shared: ~0.3 MB for the table."""

_TABLE: dict[float, float] = {float(i): float(i) for i in range(-LARGEST, LARGEST + 1) if i}

N = TypeVar("N", int, float)


def one(x: N) -> N:
    """`x`, or the one shared object of its value if it is a whole-numbered float in the table."""
    return _TABLE.get(x, x) if x.__class__ is float else x
