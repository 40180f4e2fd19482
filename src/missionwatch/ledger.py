"""The cumulative ledger of one mission: exact counts and sums per event-time
bucket and per cohort, from which every metric is derived.

A cell is keyed by (bucket_start, dimension, value): dimension `*` with value
`*` is the whole mission; otherwise a cohort key or protected proxy and one of
its values (`(none)` when a record lacks the attribute, so the values of a
dimension always add up to the whole mission). Cells hold named measures:

- `actions`, `not_allowed`, `contacted_subjects` (subjects first contacted);
- `type:<action_type>`, `decision:<decision>`, `template:<template>`;
- `attr:<action_type>:<attribute>:n|sum|sumsq` for numeric attributes;
- `outcome:<type>` (count) and `outcome:<type>:value` (sum of values).

Cells only ever add, so buckets merge by summing and the whole-mission totals
are the sum over buckets. Outcomes are counted in the bucket of their own
event time, under their subject's cohort.
"""

from __future__ import annotations

import math
import sys
from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

__all__ = ["NONE", "Ledger"]

NONE = "(none)"
Cell = dict[str, float]


class Ledger:
    def __init__(self, bucket_seconds: float, dimensions: Iterable[str]) -> None:
        self.bucket_seconds = bucket_seconds
        self.dimensions = tuple(dimensions)
        self.cells: dict[tuple[float, str, str], Cell] = {}
        self.touched: set[tuple[float, str, str]] = set()
        """Cells changed since the last `drain_touched`: what a streaming writer appends."""

    def bucket(self, t: float) -> float:
        return math.floor(t / self.bucket_seconds) * self.bucket_seconds

    def _cells(self, t: float, cohort: Mapping[str, str]) -> list[Cell]:
        b = self.bucket(t)
        keys = [(b, "*", "*")] + [(b, d, cohort.get(d, NONE)) for d in self.dimensions]
        cells = self.cells
        out = []
        self.touched.update(keys)
        for k in keys:
            c = cells.get(k)
            if c is None:
                c = cells[k] = {}
            out.append(c)
        return out

    def drain_touched(self) -> list[tuple[float, str, str]]:
        """The cells changed since the last call, sorted; forgets them."""
        out = sorted(self.touched)
        self.touched.clear()
        return out

    def add_action(
        self,
        t: float,
        cohort: Mapping[str, str],
        action_type: str,
        decision: str,
        template: str | None,
        numbers: Mapping[str, float],
        new_subject: bool,
    ) -> None:
        incs: list[tuple[str, float]] = [
            ("actions", 1), (f"type:{action_type}", 1), (f"decision:{decision}", 1),
        ]
        if decision != "allowed":
            incs.append(("not_allowed", 1))
        if template is not None:
            incs.append((f"template:{template}", 1))
        if new_subject:
            incs.append(("contacted_subjects", 1))
        for name, x in numbers.items():
            p = f"attr:{action_type}:{name}"
            incs += [(p + ":n", 1), (p + ":sum", x), (p + ":sumsq", x * x)]
        incs = [(sys.intern(k), v) for k, v in incs]  # one copy of each measure name, shared by all cells
        for cell in self._cells(t, cohort):
            for k, v in incs:
                cell[k] = cell.get(k, 0) + v

    def add_outcome(self, t: float, cohort: Mapping[str, str], outcome_type: str, value: float) -> None:
        k = sys.intern(f"outcome:{outcome_type}")
        kv = sys.intern(k + ":value")
        for cell in self._cells(t, cohort):
            cell[k] = cell.get(k, 0) + 1
            cell[kv] = cell.get(kv, 0) + value

    def totals(self) -> dict[tuple[str, str], Cell]:
        """Whole-mission totals per (dimension, value): the sum over buckets."""
        out: dict[tuple[str, str], Cell] = defaultdict(dict)
        for (_, d, v), cell in self.cells.items():
            acc = out[(d, v)]
            for k, x in cell.items():
                acc[k] = acc.get(k, 0) + x
        return dict(out)

    def rows(self, mission_id: str) -> list[dict[str, Any]]:
        """Long-format rows for the analysts' `ledger` table."""
        return list(self.iter_rows(mission_id))

    def iter_rows(self, mission_id: str) -> Iterator[dict[str, Any]]:
        """`rows`, one at a time (a long mission has hundreds of thousands)."""
        for (b, d, v), cell in sorted(self.cells.items()):
            for k, x in sorted(cell.items()):
                yield {"mission_id": mission_id, "bucket_start": b, "dimension": d, "cohort": v,
                       "measure": k, "value": x}
