"""Campaigns that begin alike, fed through monitors once where they are alike.

A simulated campaign with a plant that begins part way through (`change_at`) is, up to
there, the same records as its seed's campaign without it. `feed_forked` feeds a trunk
campaign through one monitor and, where a branch campaign leaves it, forks that monitor
(a deep copy that goes on by itself) to feed the branch the rest of its records: what each
gets equals what a monitor fed all of its records from the start would issue
(tests/core/test_forking.py checks that)."""

from __future__ import annotations

import copy
from collections.abc import Hashable, Iterable
from dataclasses import dataclass, field
from typing import Any

from missionwatch.monitor import Monitor, Rejection
from missionwatch.signing import Signer
from missionwatch.spec import SpecRegistry


@dataclass
class Fed:
    """A monitor and what feeding it a campaign's records issued."""

    monitor: Monitor
    out: list[dict[str, Any]] = field(default_factory=list)
    rejected: list[Rejection] = field(default_factory=list)

    def feed(self, records: Iterable[dict[str, Any]]) -> None:
        for r in records:
            step = self.monitor.feed(r)
            self.out += step.out
            self.rejected += step.rejected

    def fork(self) -> Fed:
        """A copy that goes on by itself; the specs and the signer, which a monitor only reads,
        are shared."""
        m = self.monitor
        return Fed(copy.deepcopy(m, memo={id(m.specs): m.specs, id(m.signer): m.signer}),
                   list(self.out), list(self.rejected))


def common_prefix(a: list[dict[str, Any]], b: list[dict[str, Any]]) -> int:
    """How many records `a` and `b` begin with alike."""
    return next((i for i, (x, y) in enumerate(zip(a, b, strict=False)) if x != y), min(len(a), len(b)))


def feed_forked(registry: SpecRegistry, trunk: list[dict[str, Any]],
                branches: dict[Hashable, list[dict[str, Any]]]) -> tuple[Fed, dict[Hashable, Fed]]:
    """`trunk` and each of `branches` fed through a monitor of their own (one signer for all),
    each branch forked from the trunk's where its records leave the trunk's."""
    at = {key: common_prefix(trunk, records) for key, records in branches.items()}
    whole = Fed(Monitor(registry, signer=Signer.generate("m"), allow_unsigned=True))
    forked: dict[Hashable, Fed] = {}
    done = 0
    for n in sorted(set(at.values())):
        whole.feed(trunk[done:n])
        done = n
        for key in (k for k, where in at.items() if where == n):
            forked[key] = whole.fork()
            forked[key].feed(branches[key][n:])
    whole.feed(trunk[done:])
    return whole, {key: forked[key] for key in branches}
