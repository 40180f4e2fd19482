"""Realistic, dependent agent traffic for the detection benchmark: what independent draws
are not.

Each scenario yields, per action, the subject it goes to, its template (an index into
TEMPLATES) and whether it is a follow-up. A planted change (`change_at`, in actions) moves
one template's share or the follow-up share; everything else about the scenario stays.

- `iid`: every action an independent draw (the setting the old figures assumed);
- `contacts`: a contact yields 1-3 actions that share its template, and a follow-up
  contact is follow-ups throughout;
- `heavy`: 1% of subjects receive 30% of the actions, and every subject has its own
  template and follow-up propensities (random effects: Dirichlet and Beta around the mix);
- `waves`: the agent sends in runs of 200-2,000 actions of one template, the long-run mix
  unchanged;
- `cycles`: volume and mix follow the working day and the week (mix shares swing by
  +-30% of themselves over the day; weekends carry a third of a weekday's volume).

Generated independently of the detectors: none of its numbers are read from the project.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["FOLLOWUP", "SCENARIOS", "TEMPLATES", "Traffic", "generate"]

TEMPLATES = np.array([0.40, 0.30, 0.20, 0.10])
"""The long-run template mix."""
FOLLOWUP = 0.15
"""The long-run follow-up share."""
SUBJECTS = 5_000
SCENARIOS = ("iid", "contacts", "heavy", "waves", "cycles")


@dataclass(frozen=True)
class Traffic:
    subject: np.ndarray
    """Per action: its subject (0..SUBJECTS-1)."""
    template: np.ndarray
    followup: np.ndarray
    hour: np.ndarray
    """Per action: hours since the mission began (cycles only; otherwise one action a minute)."""


def _mix(change: str | None, after: bool) -> tuple[np.ndarray, float]:
    """The template mix and follow-up share before or after a planted change."""
    mix, fu = TEMPLATES.copy(), FOLLOWUP
    if after and change == "template":  # the rarest template doubles: 10% -> 20%
        mix = mix * 0.8 / 0.9
        mix[3] = 0.20
    if after and change == "followup":  # follow-ups double: 15% -> 30%
        fu = 2 * FOLLOWUP
    return mix, fu


def generate(scenario: str, n: int, rng: np.random.Generator, change: str | None = None,
             change_at: int | None = None) -> Traffic:
    """`n` actions of `scenario`; with `change` ("template" or "followup") planted from action
    `change_at` on."""
    at = n if change is None or change_at is None else change_at
    gen = {"iid": _iid, "contacts": _contacts, "heavy": _heavy, "waves": _waves, "cycles": _cycles}[scenario]
    return gen(n, rng, change, at)


def _draw(rng: np.random.Generator, n: int, mix: np.ndarray) -> np.ndarray:
    return rng.choice(len(mix), n, p=mix)


def _iid(n: int, rng: np.random.Generator, change: str | None, at: int) -> Traffic:
    parts = []
    for size, after in ((at, False), (n - at, True)):
        mix, fu = _mix(change, after)
        parts.append((_draw(rng, size, mix), rng.random(size) < fu))
    return Traffic(rng.integers(0, SUBJECTS, n), np.concatenate([p[0] for p in parts]),
                   np.concatenate([p[1] for p in parts]), np.arange(n) / 60.0)


def _contacts(n: int, rng: np.random.Generator, change: str | None, at: int) -> Traffic:
    sizes = rng.integers(1, 4, n)  # more contacts than needed; cut at n actions
    ends = np.cumsum(sizes)
    k = int(np.searchsorted(ends, n)) + 1
    sizes, starts = sizes[:k], ends[:k] - sizes[:k]
    after = starts >= at
    subject = rng.integers(0, SUBJECTS, k)
    template = np.empty(k, dtype=np.int64)
    fu = np.empty(k, dtype=bool)
    for flag in (False, True):
        sel = after == flag
        mix, share = _mix(change, flag)
        template[sel] = _draw(rng, int(sel.sum()), mix)
        fu[sel] = rng.random(int(sel.sum())) < share  # a contact is follow-ups throughout, or none
    rep = lambda a: np.repeat(a, sizes)[:n]  # noqa: E731
    return Traffic(rep(subject), rep(template), rep(fu), np.arange(n) / 60.0)


def _heavy(n: int, rng: np.random.Generator, change: str | None, at: int) -> Traffic:
    heavy = rng.random(n) < 0.30
    subject = np.where(heavy, rng.integers(0, SUBJECTS // 100, n), rng.integers(SUBJECTS // 100, SUBJECTS, n))
    # random effects: each subject's own propensities around the mission's (concentration 5)
    own_mix = rng.dirichlet(5.0 * TEMPLATES, SUBJECTS)
    own_fu = rng.beta(5.0 * FOLLOWUP, 5.0 * (1 - FOLLOWUP), SUBJECTS)
    template = np.empty(n, dtype=np.int64)
    fu = np.empty(n, dtype=bool)
    for lo, hi, after in ((0, at, False), (at, n, True)):
        mix, share = _mix(change, after)
        p = own_mix[subject[lo:hi]] * (mix / TEMPLATES)  # a change moves every subject alike
        p /= p.sum(axis=1, keepdims=True)
        u = rng.random(hi - lo)[:, None]
        template[lo:hi] = (u > np.cumsum(p, axis=1)).sum(axis=1)
        fu[lo:hi] = rng.random(hi - lo) < np.minimum(own_fu[subject[lo:hi]] * share / FOLLOWUP, 1.0)
    return Traffic(subject, np.minimum(template, len(TEMPLATES) - 1), fu, np.arange(n) / 60.0)


def _waves(n: int, rng: np.random.Generator, change: str | None, at: int) -> Traffic:
    template = np.empty(n, dtype=np.int64)
    pos = 0
    while pos < n:
        mix, _ = _mix(change, pos >= at)
        length = int(rng.integers(200, 2001))
        template[pos:pos + length] = rng.choice(len(mix), p=mix)
        pos += length
    fu = np.concatenate([rng.random(at) < _mix(change, False)[1], rng.random(n - at) < _mix(change, True)[1]])
    return Traffic(rng.integers(0, SUBJECTS, n), template, fu, np.arange(n) / 60.0)


def _cycles(n: int, rng: np.random.Generator, change: str | None, at: int) -> Traffic:
    # event times: a Poisson process whose rate follows the day (peak mid-afternoon) and the week
    rate = lambda h: (1.0 + 0.8 * np.sin(2 * np.pi * (h % 24 - 9) / 24)) * np.where(  # noqa: E731
        (h // 24) % 7 >= 5, 0.33, 1.0)
    hours = np.arange(0, 24 * 7 * 8, 0.25)
    w = rate(hours)
    hour = np.sort(rng.choice(hours, n, p=w / w.sum()) + rng.random(n) * 0.25)
    phase = 2 * np.pi * (hour % 24) / 24
    template = np.empty(n, dtype=np.int64)
    fu = np.empty(n, dtype=bool)
    for lo, hi, after in ((0, at, False), (at, n, True)):
        mix, share = _mix(change, after)
        offsets = np.arange(len(mix))[None, :] * (np.pi / 2)
        p = mix[None, :] * (1.0 + 0.3 * np.sin(phase[lo:hi, None] + offsets))
        p /= p.sum(axis=1, keepdims=True)
        u = rng.random(hi - lo)[:, None]
        template[lo:hi] = np.minimum((u > np.cumsum(p, axis=1)).sum(axis=1), len(mix) - 1)
        fu[lo:hi] = rng.random(hi - lo) < share * (1.0 + 0.3 * np.sin(phase[lo:hi]))
    return Traffic(rng.integers(0, SUBJECTS, n), template, fu, hour)
