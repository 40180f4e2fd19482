"""Over-dispersion of a categorical stream whose observations depend on their neighbours.

Real agent traffic is not a sequence of independent draws: one contact yields several
actions in one template, close together; an agent sends a run of one template. A share
estimated over a window of n such actions then has a variance phi times the binomial one,
with phi the stream's long-run variance ratio (the design effect of a window):

    phi = 1 + 2 sum_{j >= 1} rho_j,

rho_j the lag-j autocorrelation, pooled over the categories of the stream:

    rho_j = (sum_t [v_t = v_{t-j}] / p(v_t) / N_j - 1) / (C - 1),

the standardised cross products summed over categories (1 for a repeat in a category of
share p, 0 on average for independent draws). The counts behind it are exact: repeats per
(lag, category) up to `lags` apart, never per subject.

The sum is truncated where the data say the dependence ends: Geyer's initial positive
sequence (1992, the estimator MCMC uses for effective sample sizes) adds the pairs
rho_{2k} + rho_{2k+1} (rho_0 = 1) while they stay positive, up to `lags`. A fixed window
would add the noise of every lag in it: on independent draws it read phi 1 +- 0.2 at a
2,000-action baseline with 64 lags, and the detectors lost a third of their speed to it;
truncated, the noise is that of the few lags the dependence reaches.

What it sees and what it does not:

- dependence between actions up to `lags` apart (contact clusters, bursts of one subject's
  actions, runs of one template) raises phi;
- subjects that differ in their own propensities but whose actions are spread over the
  mission do not: given the subjects, a window's share is then binomial, and the baseline
  holds the same subjects;
- dependence longer than `lags` (waves of hundreds or thousands of actions of one template)
  leaves the initial positive sequence still positive at the last lag: the sum is cut, not
  ended. Then phi is also estimated by batch means: the variance of the category shares
  over consecutive blocks of BLOCK actions, times BLOCK, over the binomial variance (1 for
  independent draws; about BLOCK for runs longer than a block), and the larger estimate is
  used. A block cannot see runs longer than itself either, so such a stream tempers its
  detectors by about BLOCK: they stay within their false-alarm budget and detect little
  until the baseline spans many waves (README, "What the statistics assume").

`factor()` is what detectors temper by: max(1, phi) inflated by one standard error of the
estimate (a sum of m estimated autocorrelations: sd(phi) ~ phi sqrt(4 m / N)), so a
detector is not made much bolder by an estimate that came out low by chance; `phi` (at
least 1, not inflated) is what a baseline's bounds use, already at 99.9%.
One factor per stream: every category is assumed to cluster alike.
"""

from __future__ import annotations

import math
import sys
from typing import Any

import numpy as np

__all__ = ["LAGS", "Dispersion"]

LAGS = 64
"""Lags the long-run variance reaches (actions)."""
REFRESH = 256
"""Observations between two estimates."""
MIN_OBSERVATIONS = 200
"""Below this many observations the factor is 1: too few for any estimate."""
BUMP = 1.0
"""Standard errors the estimate is raised by before use."""
MAX_CATEGORIES = 64
"""Categories counted apart; later new ones share one code (an agent that names a fresh
template in every action must not make the counts grow with the stream)."""
_OTHER = "\x00(other)"
assert MAX_CATEGORIES <= 256, "Dispersion keeps codes in bytes"
BLOCK = 256
"""Actions per block of the batch-means estimate (dependence longer than LAGS)."""
MIN_BLOCKS = 4
"""Blocks the batch-means estimate needs."""


def _empty(shape: tuple[int, ...], dtype: type) -> np.ndarray:
    a: np.ndarray = np.zeros(shape, dtype=dtype)
    a.flags.writeable = False  # shared by every stream until its first category: grown (a copy) before use
    return a


_NO_COUNTS = _empty((0,), np.int64)
_NO_SUMS = _empty((0,), np.float64)
_NO_REPEATS: dict[int, np.ndarray] = {}


class Dispersion:
    """Repeats per (lag, category) of one categorical stream; `factor()` its design effect."""

    __slots__ = ("_at", "_block", "_block_sq", "_block_sum", "_blocks", "_factor", "_in_block", "_pending",
                 "_phi", "_summed", "_tail", "codes", "counts", "cut", "lags", "repeats", "total")

    def __init__(self, lags: int = LAGS) -> None:
        self.lags = lags
        self.codes: dict[str, int] = {}
        self.counts = _NO_COUNTS
        """Observations per category code."""
        if lags not in _NO_REPEATS:
            _NO_REPEATS[lags] = _empty((lags, 0), np.int64)
        self.repeats = _NO_REPEATS[lags]
        """repeats[j - 1, c]: times an observation of c followed one of c j observations earlier."""
        self.total = 0
        self._tail = bytearray()
        self._pending = bytearray()
        """The codes since the last `_absorb` (and before them its last `lags`): a byte each,
        codes being below MAX_CATEGORIES (a list would hold a pointer each)."""
        self._at = 0
        self._factor = 1.0
        self._phi = 1.0
        self._summed = 0
        """Lags the last estimate summed (the m of its standard error)."""
        self._block: dict[int, int] = {}
        self._in_block = 0
        self._blocks = 0
        self._block_sq = _NO_SUMS
        self._block_sum = _NO_SUMS
        """Per category, the sum of squared and of plain counts over the closed blocks."""
        self.cut = False
        """Whether the last estimate's sequence was still positive at the last lag."""

    def add(self, category: str) -> None:
        code = self.codes.get(category)
        if code is None:
            if len(self.codes) >= MAX_CATEGORIES - 1:
                category = _OTHER  # pooled: a stream of lumped categories clusters as the stream does
            code = self.codes.setdefault(sys.intern(category), len(self.codes))
        self._pending.append(code)
        self._block[code] = self._block.get(code, 0) + 1
        self._in_block += 1
        if self._in_block == BLOCK:
            self._close_block()
        self.total += 1
        if len(self._pending) >= REFRESH:
            self._absorb()

    def _absorb(self) -> None:
        """Count the pending observations' repeats (against the last `lags` before them)."""
        if not self._pending:
            return
        c = len(self.codes)
        if self.counts.size < c:
            self.counts = np.pad(self.counts, (0, c - self.counts.size))
            self.repeats = np.pad(self.repeats, ((0, 0), (0, c - self.repeats.shape[1])))
        seq = np.frombuffer(self._tail + self._pending, dtype=np.uint8).astype(np.int64)
        new = len(self._pending)
        start = len(seq) - new
        self.counts += np.bincount(seq[start:], minlength=c)
        for j in range(1, min(self.lags, len(seq) - 1) + 1):
            lo = max(start, j)
            same = seq[lo:][seq[lo:] == seq[lo - j:len(seq) - j]]
            if same.size:
                self.repeats[j - 1] += np.bincount(same, minlength=c)
        self._tail = bytearray(seq[-self.lags:].astype(np.uint8).tobytes())
        self._pending = bytearray()

    def _close_block(self) -> None:
        c = len(self.codes)
        if self._block_sq.size < c:
            self._block_sq = np.pad(self._block_sq, (0, c - self._block_sq.size))
            self._block_sum = np.pad(self._block_sum, (0, c - self._block_sum.size))
        for code, k in self._block.items():
            self._block_sq[code] += k * k
            self._block_sum[code] += k
        self._blocks += 1
        self._block, self._in_block = {}, 0

    def batch_means(self) -> float:
        """phi by batch means over the closed blocks (1 with fewer than MIN_BLOCKS)."""
        b = self._blocks
        if b < MIN_BLOCKS:
            return 1.0
        share = self._block_sum / (b * BLOCK)
        var = (self._block_sq / (b * BLOCK * BLOCK) - share * share) * b / (b - 1)
        binomial = float((share * (1 - share)).sum())
        return float(BLOCK * var.sum() / binomial) if binomial > 0 else 1.0

    def estimate(self) -> float:
        """phi from every observation so far (not inflated; below 1 for a stream that
        alternates more than chance)."""
        self._absorb()
        self._summed = 0
        n = float(self.counts.sum())
        seen = self.counts > 0
        k = int(seen.sum())
        reach = min(self.lags, int(n) - 1)
        if k < 2 or reach < 1:
            return 1.0
        p = self.counts[seen] / n
        lag = np.arange(1, reach + 1)
        rho = ((self.repeats[:reach][:, seen] / p).sum(axis=1) / (n - lag) - 1.0) / (k - 1)
        rho = np.concatenate([[1.0], rho])
        phi, self.cut = -1.0, reach == self.lags
        for first in range(0, reach, 2):  # the pairs (rho_0, rho_1), (rho_2, rho_3), ... while positive
            pair = float(rho[first] + rho[first + 1])
            if pair <= 0.0:
                self.cut = False
                break
            phi += 2.0 * pair
            self._summed = first + 1
        return max(phi, self.batch_means()) if self.cut else phi

    def factor(self) -> float:
        """The design effect to temper by: >= 1, refreshed every REFRESH observations."""
        if self.total < MIN_OBSERVATIONS:
            return 1.0
        if self.total - self._at >= REFRESH or self._at == 0:
            self._phi = self.estimate()
            self._at = self.total
            summed = max(self._summed, 1) if self.lags else 0  # lags 0: independent by assumption
            bump = 1.0 + BUMP * math.sqrt(4.0 * summed / self.total)
            self._factor = max(1.0, self._phi) * bump
        return self._factor

    @property
    def phi(self) -> float:
        """The estimate as of the last `factor()`, at least 1 and not inflated."""
        return max(1.0, self._phi)

    @property
    def last(self) -> float:
        """The factor as last estimated (read-only: no refresh)."""
        return self._factor

    def status(self) -> dict[str, Any]:
        return {"phi": round(self._phi, 4), "factor": round(self._factor, 4), "lags": self.lags,
                "lags_summed": self._summed, "observations": self.total, "beyond_lags": self.cut}
