"""Isolated runs: how outcomes that name no action (`follows` is optional) are still compared
with the baseline.

An outcome that names no action could come from any earlier action of its subject. Taking
the subject's latest action before it is biased: the outcome of a baseline action often comes
after the subject's next action, so the baseline loses outcomes the later phase gains (a fair
simulated mission read 1.7x to 3.3x its baseline that way).

A *run* is a subject's actions chained by gaps shorter than `within` (the spec's
`[outcomes] within`: the longest an outcome takes to follow its action). Once the subject
has had no action for `within` after the run's last one, the run is closed: every outcome
of the subject in [first, last + within) came from the run's actions, and no outcome of
the run falls outside it. Its count is exact, whatever the other runs. A closed run whose
actions are all of one phase (baseline, or after it) is one independent unit of that
phase: x outcomes over k contact actions. Runs that straddle the end of the baseline are
left out. Runs are chosen by when the subject's actions happened, never by their
outcomes, so outcomes per contact action of a phase's runs (a ratio over clusters,
stats.RatioStat) estimates that of all its contacts.

Assumes: outcomes follow their action within `within`; whether and when a subject is
contacted again does not depend on its outcomes; subjects are independent of each other
(the runs of one subject are taken as independent). A subject contacted without a pause of
`within` throughout the mission never closes a run: the comparison speaks for the others.

Runs close once the mission's clock passes last + within. The clock is the median of the
latest 31 action times, never going back: a few records dated far ahead (or back) cannot
close runs early (which would count too few outcomes) or hold them open. An action that
arrives after its subject's run was closed, yet dated within `within` of it, taints the run
it starts (left out: its window may hold the closed run's outcomes).
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass

__all__ = ["Isolation", "Run"]

CLOCK_ACTIONS = 31
"""Action times the closing clock takes the median of."""


@dataclass(slots=True)
class Run:
    """A subject's actions chained by gaps shorter than `within`, and its outcomes so far."""

    first: float
    last: float
    phase: str | None
    """'baseline' or 'post' while all its actions are of that phase; None once mixed or tainted."""
    contacts: int = 0
    _counts: dict[str, int] | None = None
    """Per metric, its outcomes in the run (None: none yet, the case of most runs)."""
    due: float = 0.0
    """The time its entry in the closing queue is due."""
    subject: str = ""

    def __lt__(self, other: Run) -> bool:
        """The closing queue's order: by due time, then by subject."""
        if self.due != other.due:
            return self.due < other.due
        return self.subject < other.subject

    @property
    def counts(self) -> dict[str, int]:
        """Per metric, its outcomes in the run (read-only)."""
        return self._counts if self._counts is not None else {}


class Isolation:
    __slots__ = ("_due", "_recent", "clock", "latest", "open", "within")

    def __init__(self, within: float) -> None:
        self.within = within
        self.latest: dict[str, float] = {}
        """Per subject, the latest action time of its closed runs."""
        self.open: dict[str, Run] = {}
        """Per subject, its run not yet closed."""
        self._due: list[Run] = []
        """The open runs by their due time (last + within when pushed; see `_advance`): closed
        in that order. The runs themselves, not (due, subject) pairs: one object less each."""
        self._recent: list[float] = []
        """The latest CLOCK_ACTIONS action times (a list: a deque is most of a kilobyte)."""
        self.clock = float("-inf")

    def action(self, subject: str, t: float, phase: str, contact: bool) -> list[Run]:
        """An action of `subject` at t; returns the runs closed since (mixed ones included:
        `phase` None)."""
        closed = self._advance(t)
        run = self.open.get(subject)
        if run is not None and t - run.last >= self.within:  # a pause of `within`: it closed
            closed.append(self._close(subject))
            run = None
        if run is None:
            prev = self.latest.get(subject)
            tainted = prev is not None and t - prev < self.within
            run = self.open[subject] = Run(t, t, None if tainted else phase, due=t + self.within, subject=subject)
            heapq.heappush(self._due, run)
        elif t - run.first <= -self.within:  # back-dated before the run by `within`: unknown ground
            run.phase = None
        run.first, run.last = min(run.first, t), max(run.last, t)
        if run.phase != phase:
            run.phase = None
        run.contacts += contact
        return closed

    def outcome(self, subject: str, t: float, metrics: list[str]) -> None:
        """An outcome of `subject` at t, counted by `metrics`."""
        run = self.open.get(subject)
        if run is not None and run.first <= t < run.last + self.within:
            if run._counts is None:
                run._counts = {}
            for m in metrics:
                run._counts[m] = run._counts.get(m, 0) + 1

    def _close(self, subject: str) -> Run:
        run = self.open.pop(subject)
        self.latest[subject] = run.last
        return run

    def _advance(self, t: float) -> list[Run]:
        self._recent.append(t)
        if len(self._recent) < CLOCK_ACTIONS:
            return []
        if len(self._recent) > CLOCK_ACTIONS:
            del self._recent[0]
        self.clock = max(self.clock, sorted(self._recent)[CLOCK_ACTIONS // 2])
        closed = []
        while self._due and self._due[0].due <= self.clock:
            run = heapq.heappop(self._due)
            if self.open.get(run.subject) is not run:  # a run closed by a pause: no longer open
                continue
            if run.last + self.within > self.clock:  # it grew since: due later
                run.due = run.last + self.within
                heapq.heappush(self._due, run)
            else:
                closed.append(self._close(run.subject))
        return closed
