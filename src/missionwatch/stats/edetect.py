"""Change detectors as e-detectors (Shin, Ramdas and Rinaldo, 2023), and a
classical tabular CUSUM for reference.

An e-CUSUM statistic M_t = max(M_{t-1}, 1) * L_t, where L_t is a likelihood
ratio of a predictable alternative against the frozen baseline, alarms when
M_t >= 1/alpha. Guarantee: on an unchanged stream the average run length to a
false alarm is at least 1/alpha observations. A mixture over a grid of
alternatives (the mean of several e-CUSUMs) keeps that guarantee.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

__all__ = ["BernoulliECusum", "CategoricalECusum", "TabularCusum"]


class BernoulliECusum:
    """Detects a rise of a Bernoulli rate above a frozen baseline rate p0.

    Mixes e-CUSUMs for the alternatives p0 * r for each r in `rises`.
    """

    def __init__(self, p0: float, rises: Sequence[float], alpha: float) -> None:
        self.p0 = p0
        self.rises = tuple(rises)
        self.alpha = alpha
        self._reset()

    def _reset(self) -> None:
        p0 = min(max(self.p0, 1e-9), 1 - 1e-9)
        alts = [min(p0 * r, 1 - 1e-6) for r in self.rises]
        self._l1 = [p1 / p0 for p1 in alts]
        self._l0 = [(1 - p1) / (1 - p0) for p1 in alts]
        self._m = [0.0] * len(alts)
        self.n = 0

    def update(self, x: bool, t: float | None = None) -> BernoulliECusum:
        ls = self._l1 if x else self._l0
        self._m = [(m if m > 1.0 else 1.0) * lr for m, lr in zip(self._m, ls, strict=True)]
        self.n += 1
        return self

    @property
    def statistic(self) -> float:
        return sum(self._m) / len(self._m)

    @property
    def alarm(self) -> bool:
        return self.statistic >= 1.0 / self.alpha


class CategoricalECusum:
    """Detects a change in a categorical mix away from a frozen, smoothed baseline.

    The alternative is the Dirichlet predictive distribution of the observations
    since the statistic last restarted (M < 1), with `prior_strength`
    pseudo-observations placed on the baseline: predictable, so M is an e-CUSUM.
    Categories never seen in the baseline share the `other` bucket.
    """

    OTHER = "(other)"

    def __init__(
        self, baseline_counts: Mapping[str, int], alpha: float, smoothing: float = 1.0,
        prior_strength: float = 20.0,
    ) -> None:
        self.baseline_counts = dict(baseline_counts)
        self.alpha = alpha
        self.smoothing = smoothing
        self.prior_strength = prior_strength
        self._reset()

    def _reset(self) -> None:
        cats = sorted(self.baseline_counts)
        total = sum(self.baseline_counts.values()) + self.smoothing * (len(cats) + 1)
        self.p0 = {c: (self.baseline_counts[c] + self.smoothing) / total for c in cats}
        self.p0[self.OTHER] = self.smoothing / total
        self._counts: dict[str, int] = {}
        self._n = 0
        self._m = 0.0
        self.n = 0

    def category(self, x: str) -> str:
        return x if x in self.p0 else self.OTHER

    def update(self, x: str, t: float | None = None) -> CategoricalECusum:
        if self._m < 1.0:  # the CUSUM restarted last step: the plug-in forgets the past
            self._counts.clear()
            self._n = 0
        c = self.category(x)
        p0 = self.p0[c]
        q = (self._counts.get(c, 0) + self.prior_strength * p0) / (self._n + self.prior_strength)
        self._m = max(self._m, 1.0) * (q / p0)
        self._counts[c] = self._counts.get(c, 0) + 1
        self._n += 1
        self.n += 1
        return self

    @property
    def statistic(self) -> float:
        return self._m

    @property
    def alarm(self) -> bool:
        return self._m >= 1.0 / self.alpha

    def recent_share(self, x: str) -> float:
        """Share of category x among observations since the last restart."""
        return self._counts.get(self.category(x), 0) / self._n if self._n else math.nan

    def top_rise(self) -> tuple[str, float, float]:
        """The category whose recent share rose most over its baseline share."""
        best = (self.OTHER, 0.0, self.p0[self.OTHER])
        best_gap = -math.inf
        for c, p in sorted(self.p0.items()):
            share = self._counts.get(c, 0) / self._n if self._n else 0.0
            if share - p > best_gap:
                best_gap, best = share - p, (c, share, p)
        return best


class TabularCusum:
    """Page's one-sided tabular CUSUM on standardized observations: S = max(0, S + z - k),
    alarm when S > h. A classical reference detector with no e-value guarantee."""

    def __init__(self, mu0: float, sigma: float, k: float = 0.5, h: float = 5.0) -> None:
        self.mu0 = mu0
        self.sigma = sigma
        self.k = k
        self.h = h
        self._reset()

    def _reset(self) -> None:
        self.s = 0.0
        self.n = 0

    def update(self, x: float, t: float | None = None) -> TabularCusum:
        self.s = max(0.0, self.s + (x - self.mu0) / self.sigma - self.k)
        self.n += 1
        return self

    @property
    def statistic(self) -> float:
        return self.s

    @property
    def alarm(self) -> bool:
        return self.s > self.h
