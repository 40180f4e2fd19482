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

Memory stays bounded: buckets that start more than `open_seconds` before the
newest bucket are sealed (`seal`), handed to the ledger's writer and dropped. A
record that comes later still for a sealed bucket opens a new part of its cells,
sealed in turn; a writer holds each cell as the sum of its parts.
"""

from __future__ import annotations

import math
import sys
from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping
from typing import Any, TypeVar

from .stats.floats import one

__all__ = ["NONE", "Key", "Ledger"]

NONE = "(none)"
_T = TypeVar("_T")
Cell = Mapping[str, float]
"""A cell's measures by name, as readers see it (`Measures`)."""
Key = tuple[float, str, str]
"""(bucket_start, dimension, value)"""


class Ledger:
    def __init__(self, bucket_seconds: float, dimensions: Iterable[str], open_seconds: float = math.inf) -> None:
        self.bucket_seconds = bucket_seconds
        self.open_seconds = open_seconds
        self.dimensions = tuple(dimensions)
        self.cells: dict[Key, Measures] = {}
        """The open cells: those of buckets not yet sealed, and parts reopened by late records."""
        self.touched: set[Key] = set()
        """Cells changed since the last `drain_touched`: what a streaming writer appends."""
        self.newest = -math.inf
        """The newest bucket a record fell in."""
        self._seal_due = False
        self._sealed_totals: dict[tuple[str, str], Measures] = {}

    def bucket(self, t: float) -> float:
        return math.floor(t / self.bucket_seconds) * self.bucket_seconds

    def _cells(self, t: float, cohort: Mapping[str, str]) -> list[Measures]:
        b = self.bucket(t)
        if b > self.newest:
            self.newest = b
            self._seal_due = True
        keys = [(b, "*", "*")] + [(b, d, cohort.get(d, NONE)) for d in self.dimensions]
        cells = self.cells
        out = []
        self.touched.update(keys)
        for k in keys:
            c = cells.get(k)
            if c is None:
                c = cells[_one_copy(_KEYS, k, KEYS_KEPT)] = Measures()  # missions at work at once share keys
            out.append(c)
        return out

    def drain_touched(self) -> list[Key]:
        """The open cells changed since the last call, sorted; forgets them."""
        out = sorted(self.touched)
        self.touched.clear()
        return out

    def seal(self) -> list[tuple[Key, Measures]]:
        """Drop and return, sorted, the cells of buckets that start more than `open_seconds`
        before the newest: they are final (a later record for their bucket opens a new
        part). Looks only when a record opened a newer bucket since the last call."""
        if not self._seal_due:
            return []
        self._seal_due = False
        horizon = self.newest - self.open_seconds
        old = sorted(k for k in self.cells if k[0] < horizon)
        out = [(k, self.cells.pop(k)) for k in old]
        for key, cell in out:
            self.touched.discard(key)
            total = self._sealed_totals.get(key[1:])
            if total is None:
                dv = _one_copy(_DV, key[1:], 4096)  # one copy of each (dimension, value), whatever the missions
                total = self._sealed_totals[dv] = Measures()
            total.add(cell.pairs())
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
        shape = (action_type, decision, template, new_subject, *numbers)
        names = _ACTION_NAMES.get(shape)
        if names is None:
            names = _action_names(action_type, decision, template, numbers, new_subject)
            if len(_ACTION_NAMES) >= 4096:  # bounded, whatever the traffic names
                _ACTION_NAMES.clear()
            _ACTION_NAMES[shape] = names
        values: list[float] = [1] * (len(names) - 3 * len(numbers))
        for x in numbers.values():
            values += (1, x, x * x)
        incs = list(zip(names, values, strict=True))
        for cell in self._cells(t, cohort):
            cell.add(incs)

    def add_outcome(self, t: float, cohort: Mapping[str, str], outcome_type: str, value: float) -> None:
        k = sys.intern(f"outcome:{outcome_type}")
        kv = sys.intern(k + ":value")
        incs = [(k, 1), (kv, value)]
        for cell in self._cells(t, cohort):
            cell.add(incs)

    def totals(self) -> dict[tuple[str, str], dict[str, float]]:
        """Whole-mission totals per (dimension, value): the sum over buckets, sealed or open."""
        out: dict[tuple[str, str], dict[str, float]] = defaultdict(dict)
        for dv, total in self._sealed_totals.items():
            _add_into(out[dv], total.pairs())
        for (_, d, v), cell in self.cells.items():
            _add_into(out[(d, v)], cell.pairs())
        return dict(out)

    def rows(self, mission_id: str) -> list[dict[str, Any]]:
        """Long-format rows of the open cells, for the analysts' `ledger` table."""
        return list(self.iter_rows(mission_id))

    def iter_rows(self, mission_id: str) -> Iterator[dict[str, Any]]:
        """`rows`, one at a time."""
        for key, cell in sorted(self.cells.items()):
            yield from cell_rows(mission_id, key, cell)


_ACTION_NAMES: dict[tuple[object, ...], list[str]] = {}
"""The measure names an action adds to, by its shape (type, decision, template, new subject,
numeric attributes): worked out once per shape."""


def _action_names(action_type: str, decision: str, template: str | None, numbers: Mapping[str, float],
                  new_subject: bool) -> list[str]:
    """The measures of `Ledger.add_action`, in the order it adds them: counts, then per numeric
    attribute its n, sum and sum of squares."""
    names = ["actions", f"type:{action_type}", f"decision:{decision}"]
    if decision != "allowed":
        names.append("not_allowed")
    if template is not None:
        names.append(f"template:{template}")
    if new_subject:
        names.append("contacted_subjects")
    for name in numbers:
        p = f"attr:{action_type}:{name}"
        names += [p + ":n", p + ":sum", p + ":sumsq"]
    return [sys.intern(k) for k in names]  # one copy of each measure name, shared by all cells


def cell_rows(mission_id: str, key: Key, cell: Mapping[str, float]) -> Iterator[dict[str, Any]]:
    """A cell's long-format rows (`mission_id, bucket_start, dimension, cohort, measure, value`)."""
    b, d, v = key
    for k, x in sorted(cell.items()):
        yield {"mission_id": mission_id, "bucket_start": b, "dimension": d, "cohort": v, "measure": k, "value": x}


def _add_into(acc: dict[str, float], items: Iterable[tuple[str, float]]) -> None:
    for k, x in items:
        acc[k] = acc.get(k, 0) + x


KEYS_KEPT = 1024
"""Open cells' keys `_KEYS` keeps: those of the buckets at work, not the sealed ones of a long
mission's past (4,096 made one mission's memory grow by ~0.4 MiB with its length)."""
_KEYS: dict[Key, Key] = {}
"""One copy of each open cell's key (bucket, dimension, value), whatever the missions."""
_DV: dict[tuple[str, str], tuple[str, str]] = {}
"""One copy of each (dimension, value) key of the sealed totals."""
NAMES_KEPT = 512
"""Tuples of measure names `_names` keeps. Cells of one long mission name a few thousand
combinations over time (an hour's actions, templates and outcomes in a cohort), most of them
a moment, on their way to a longer one: 4,096 kept took ~3 MiB and made a mission's memory
grow with its length up to that. 10,000 missions of 24 receipts hold ~250 at a time."""
_NAMES: dict[tuple[str, ...], tuple[tuple[str, ...], dict[str, int]]] = {}
"""Per tuple of measure names (`Measures.names`), its one shared copy and where each name is in
it, for every cell of those names."""


def _one_copy(table: dict[_T, _T], x: _T, kept: int) -> _T:
    """`x`, or the equal copy `table` holds: one object for every holder of that value. The
    table is emptied once it holds more than `kept` (bounded, whatever the traffic names)."""
    one = table.setdefault(x, x)
    if len(table) > kept:
        table.clear()
    return one


def _names(names: tuple[str, ...]) -> tuple[tuple[str, ...], dict[str, int]]:
    """The shared copy of `names`, and its index."""
    found = _NAMES.get(names)
    if found is None:
        if len(_NAMES) >= NAMES_KEPT:  # bounded, whatever the traffic names
            _NAMES.clear()
        found = _NAMES[names] = (names, {k: i for i, k in enumerate(names)})
    return found


_NO_INDEX: dict[str, int] = {}
"""The index of no names (never written: indexes are made whole by `_names`)."""


class Measures(Mapping[str, float]):
    """A cell's measures (or a (dimension, value)'s sealed cells summed): their names, sorted,
    in a tuple shared by every cell with those names, with where each name is in it, and a list
    of their values. A few pointers a measure, not a dict of its own per cell: a mission holds
    tens of open cells and a sum per cohort, and a dict of a dozen measures is ~650 bytes
    where this is ~250. Read as a mapping; added to by `add`."""

    __slots__ = ("_index", "_values", "names")

    def __init__(self) -> None:
        self.names: tuple[str, ...] = ()
        self._index = _NO_INDEX
        self._values: list[float] = []

    def add(self, pairs: list[tuple[str, float]]) -> None:
        """Add each (name, value); a name not held yet starts at 0 (as `dict.get(k, 0) + x`)."""
        values, index = self._values, self._index
        for k, x in pairs:
            at = index.get(k)
            if at is None:  # names not held yet: held from now on, with all those of `pairs`
                self._grow(pairs)
                values, index = self._values, self._index
                at = index[k]
            values[at] = one(values[at] + x)  # whole-numbered sums share their objects (stats/floats.py)

    def _grow(self, pairs: list[tuple[str, float]]) -> None:
        """Hold every name of `pairs` too: a list of just the size needed (most never grow again)."""
        names, index = _names(tuple(sorted({*self.names, *(k for k, _ in pairs)})))
        grown: list[float] = [0] * len(names)
        for k, x in zip(self.names, self._values, strict=True):
            grown[index[k]] = x
        self.names, self._index, self._values = names, index, grown

    def pairs(self) -> list[tuple[str, float]]:
        """(name, value) of each measure, by name."""
        return list(zip(self.names, self._values, strict=True))

    def __getitem__(self, name: str) -> float:
        i = self._index.get(name)
        if i is None:
            raise KeyError(name)
        return self._values[i]

    def __iter__(self) -> Iterator[str]:
        return iter(self.names)

    def __len__(self) -> int:
        return len(self.names)

    def __repr__(self) -> str:
        return f"Measures({dict(self.pairs())!r})"
