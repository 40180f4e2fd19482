"""Exact time-uniform confidence sequences by betting, for the strict mode.

`BettingCS` is the hedged capital process of Waudby-Smith and Ramdas (2023,
"Estimating means of bounded random variables by betting", JRSSB, Thm. 3 with
the predictable plug-in bets of eq. 26) for the mean of observations in [0, 1]
(a Bernoulli rate, or any bounded metric rescaled to [0, 1]). For a candidate
mean m it bets on the observations being above m and below m at once:

    K_t(m) = 1/2 prod_i (1 + l+_i(m) (X_i - m)) + 1/2 prod_i (1 - l-_i(m) (X_i - m)),

with l+_i(m) = min(l_i, c/m), l-_i(m) = min(l_i, c/(1 - m)) and l_i chosen from
X_1..X_{i-1} only. Under the true mean, K_t is a nonnegative martingale that
starts at 1, so by Ville's inequality

    P(exists t: K_t(m*) >= 1/alpha) <= alpha,

exactly, for every sample size and with no variance assumption: the guarantee
the asymptotic sequences of `cs.py` give only in the limit.

Candidate means are kept on a fixed grid of `grid + 1` points (O(grid) per
update, independent of the stream's length). The grid loses no validity: the
first product is nonincreasing in m and the second nondecreasing, so for every
m in a cell [a, b] K_t(m) >= 1/2 prod(a..b: + at b) + 1/2 prod(- at a). That
lower bound is what `e_value` reports and what excludes a cell, so the interval
is conservative by at most one cell (1/grid).

`strict_linear` and `strict_linear_e_value` give the difference of two
independent streams (mean(a) - coef * mean(b)) from each stream's sequence at
alpha/2 (a union bound), and the matching e-value: half the larger of the two
capitals, minimised over the null, which is at most the mean of two e-processes
and so is itself a valid e-value. It reaches 1/alpha exactly when the interval
at alpha lies beyond the boundary.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from .base import Detector

__all__ = ["BettingCS", "strict_linear", "strict_linear_e_value"]

_LOG2 = math.log(2.0)


class BettingCS(Detector):
    """Exact confidence sequence for the mean of observations in [0, 1].

    `alpha` tunes the bets (the level the sequence is mostly read at); `interval`
    can be read at any level, each valid on its own. `c` caps a bet at c/m, so the
    capital never loses more than a fraction c on one observation.
    """

    def __init__(self, alpha: float = 0.05, grid: int = 1000, c: float = 0.5) -> None:
        if not 0 < alpha < 1:
            raise ValueError(f"alpha must lie in (0, 1), got {alpha}")
        if grid < 2:
            raise ValueError(f"grid must be at least 2, got {grid}")
        if not 0 < c < 1:
            raise ValueError(f"c must lie in (0, 1), got {c}")
        self.alpha = alpha
        self.grid = grid
        self.c = c
        self._reset()

    def _reset(self) -> None:
        self.m = np.linspace(0.0, 1.0, self.grid + 1)
        self.n = 0
        self.total = 0.0
        self._mu = 0.5  # predictable mean estimate, (1/2 + sum X) / (n + 1)
        self._ss = 0.25  # 1/4 + sum (X_i - mu_{i-1})^2
        self.log_plus = np.zeros(self.grid + 1)
        self.log_minus = np.zeros(self.grid + 1)
        with np.errstate(divide="ignore"):
            self._cap_plus = self.c / self.m  # inf at m = 0: no cap needed there
            self._cap_minus = self.c / (1.0 - self.m)

    def _lambda(self, i: Any, ss: Any) -> Any:
        """The predictable plug-in bet before observation i (1-based; scalars or arrays):
        sqrt(2 log(2/alpha) / (sigma^2 i log(1 + i))) with sigma^2 = ss / i, so sigma^2 i = ss."""
        return np.sqrt(2.0 * math.log(2.0 / self.alpha) / (ss * np.log1p(i)))

    def update(self, x: float, t: float | None = None) -> BettingCS:
        if not 0.0 <= x <= 1.0:
            raise ValueError(f"a betting confidence sequence takes observations in [0, 1], got {x}")
        i = self.n + 1
        lam = float(self._lambda(i, self._ss))
        d = x - self.m
        self.log_plus += np.log1p(np.minimum(lam, self._cap_plus) * d)
        self.log_minus += np.log1p(-np.minimum(lam, self._cap_minus) * d)
        self._ss += (x - self._mu) ** 2
        self.n = i
        self.total += x
        self._mu = (0.5 + self.total) / (i + 1)
        return self

    def update_many(self, xs: np.ndarray) -> BettingCS:
        """Add a block of observations in their order; equal to `update` on each."""
        xs = np.asarray(xs, dtype=float)
        if xs.size == 0:
            return self
        if xs.min() < 0.0 or xs.max() > 1.0:
            raise ValueError("a betting confidence sequence takes observations in [0, 1]")
        i = self.n + 1 + np.arange(xs.size)
        totals = self.total + np.cumsum(xs)
        mu_after = (0.5 + totals) / (i + 1)
        mu_before = np.concatenate([[self._mu], mu_after[:-1]])
        ss_after = self._ss + np.cumsum((xs - mu_before) ** 2)
        ss_before = np.concatenate([[self._ss], ss_after[:-1]])
        lam = self._lambda(i, ss_before)
        d = xs[:, None] - self.m[None, :]
        self.log_plus += np.log1p(np.minimum(lam[:, None], self._cap_plus[None, :]) * d).sum(axis=0)
        self.log_minus += np.log1p(-np.minimum(lam[:, None], self._cap_minus[None, :]) * d).sum(axis=0)
        self.n += xs.size
        self.total = float(totals[-1])
        self._ss = float(ss_after[-1])
        self._mu = float(mu_after[-1])
        return self

    @property
    def mean(self) -> float:
        return self.total / self.n if self.n else math.nan

    def log_cell_capital(self) -> np.ndarray:
        """log of the capital's lower bound over each grid cell [m_j, m_{j+1}]."""
        return np.logaddexp(self.log_plus[1:], self.log_minus[:-1]) - _LOG2

    def interval(self, alpha: float | None = None) -> tuple[float, float]:
        """The sequence at `alpha` (default: the tuned level): the hull of the cells whose
        capital bound stays below 1/alpha."""
        a = self.alpha if alpha is None else alpha
        return self._hull(self.log_cell_capital(), math.log(1.0 / a))

    def _hull(self, log_cells: np.ndarray, log_level: float) -> tuple[float, float]:
        keep = np.flatnonzero(log_cells < log_level)
        if keep.size == 0:  # every cell excluded (probability <= alpha): the least-excluded one
            keep = np.array([int(np.argmin(log_cells))])
        return float(self.m[keep[0]]), float(self.m[keep[-1] + 1])

    def e_value(self, m: float) -> float:
        """Evidence against the mean being m: a lower bound on K_t(m), valid at any stopping time."""
        j = min(max(int(np.searchsorted(self.m, m, side="right")) - 1, 0), self.grid - 1)
        return math.exp(min(float(self.log_cell_capital()[j]), 700.0))

    def status(self) -> dict[str, Any]:
        lo, hi = self.interval()
        return {"detector": "betting_cs", "n": self.n, "mean": None if not self.n else round(self.mean, 6),
                "interval": [round(lo, 6), round(hi, 6)], "alpha": self.alpha}


def _difference(a: BettingCS, ca: np.ndarray, b: BettingCS, cb: np.ndarray, coef: float,
                log_level: float) -> tuple[float, float]:
    """Interval of mean(a) - coef * mean(b) from each stream's cells (log capitals `ca`, `cb`)
    kept below exp(log_level)."""
    alo, ahi = a._hull(ca, log_level)
    blo, bhi = b._hull(cb, log_level)
    return alo - coef * bhi, ahi - coef * blo


def strict_linear(a: BettingCS, b: BettingCS, coef: float, alpha: float) -> tuple[float, float, float]:
    """Exact confidence sequence for mean(a) - coef * mean(b) (coef >= 0), a and b independent:
    each stream's sequence at alpha/2. Returns (estimate, lo, hi)."""
    if a.n == 0 or b.n == 0:
        return (math.nan, -math.inf, math.inf)
    lo, hi = _difference(a, a.log_cell_capital(), b, b.log_cell_capital(), coef, math.log(2.0 / alpha))
    return (a.mean - coef * b.mean, lo, hi)


def strict_linear_e_value(a: BettingCS, b: BettingCS, coef: float, boundary: float, direction: int) -> float:
    """e-value against "mean(a) - coef * mean(b) is not beyond `boundary`" (direction +1: not
    above it; -1: not below it): the largest e for which `strict_linear` at level 1/e lies wholly
    beyond the boundary (1 if none). It is >= 1/alpha exactly when the interval at alpha lies
    beyond.

    The interval at level 1/e changes only where log e + log 2 crosses a cell's log capital,
    so the answer is one of those crossings, found by bisection over them."""
    if a.n == 0 or b.n == 0:
        return 1.0
    ca, cb = a.log_cell_capital(), b.log_cell_capital()

    def beyond(log_e: float) -> bool:
        lo, hi = _difference(a, ca, b, cb, coef, log_e + _LOG2)  # each stream at alpha/2 = 1/(2e)
        return lo > boundary if direction > 0 else hi < boundary

    if not beyond(0.0):
        return 1.0
    steps = np.unique(np.concatenate([ca, cb])) - _LOG2
    steps = steps[steps >= 0.0]
    # beyond() is constant between consecutive steps (right-closed) and true at 0: find the last true
    lo, hi = -1, len(steps)  # beyond at steps[lo] (or at 0 when lo = -1); not beyond at steps[hi]
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if beyond(float(steps[mid])):
            lo = mid
        else:
            hi = mid
    if lo < 0:  # no step at all: beyond at every level (the null is empty)
        return math.exp(700.0)
    return math.exp(min(float(steps[lo]), 700.0))
