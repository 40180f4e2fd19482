"""Change detectors as e-detectors (Shin, Ramdas and Rinaldo, 2023), and a
classical tabular CUSUM for reference.

Each e-detector tests whether a stream has left a frozen baseline. L_t is the
likelihood ratio of observation t under an alternative against the baseline.

- e-CUSUM: M_t = max(M_{t-1}, 1) * L_t
- e-SR (Shiryaev-Roberts): M_t = (1 + M_{t-1}) * L_t

Either alarms when M_t >= 1/alpha. Guarantee: on a stream whose observations
have E[L_t] <= 1 under the baseline (for a rise alternative against a baseline
rate p0, any true rate <= p0), the average run length to a false alarm is at
least 1/alpha observations. The mean of several e-detectors (a mixture over a
grid of alternatives) is an e-detector with the same guarantee, so the grid
costs log(grid size) in the threshold, not a Bonferroni split of alpha.

State is kept in log space (log M per alternative), so long streams under the
alternative neither overflow nor lose precision. `update_many` advances an
e-CUSUM over a whole array of observations at once (a cumulative-minimum scan,
exactly equal to repeated `update`), for benchmarks and bulk backfills.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, Literal

import numpy as np

from .base import Detector

__all__ = ["BernoulliECusum", "CategoricalECusum", "PoissonECusum", "TabularCusum"]

Kind = Literal["cusum", "sr"]


def _log_mean_exp(xs: Sequence[float]) -> float:
    top = max(xs)
    if top == -math.inf:
        return -math.inf
    return top + math.log(sum([math.exp(x - top) for x in xs]) / len(xs))


_LEVELS: dict[float, float] = {}
_LOG_N = [math.inf] + [math.log(n) for n in range(1, 65)]
"""log n for a mixture of n alternatives (`above`'s shortcut; none past 64)."""


def _level(alpha: float) -> float:
    """log(1/alpha), the level log M_t alarms at (worked out once per alpha)."""
    level = _LEVELS.get(alpha)
    if level is None:
        level = _LEVELS[alpha] = math.log(1.0 / alpha)
    return level


class _LikelihoodRatioEDetector(Detector):
    """Shared arithmetic of the e-detectors whose log L_t takes a closed form per alternative."""

    alpha: float
    kind: Kind

    def _start(self, n_alternatives: int) -> None:
        self._log_m = [-math.inf] * n_alternatives  # M_0 = 0: the first step restarts at 1
        self.n = 0

    def _step(self, log_ls: Sequence[float]) -> None:
        if self.kind == "cusum":
            self._log_m = [(m if m > 0.0 else 0.0) + ll for m, ll in zip(self._log_m, log_ls, strict=True)]
        else:  # log((1 + M) L) = log1p(M) + log L, computed without overflow
            self._log_m = [(m + math.log1p(math.exp(-m)) if m > 0 else math.log1p(math.exp(m))) + ll
                           for m, ll in zip(self._log_m, log_ls, strict=True)]
        self.n += 1

    def _scan(self, log_ls: np.ndarray) -> int | None:
        """Advance an e-CUSUM over rows of log L (shape: steps x alternatives); return the
        index of the first step whose mixture reached 1/alpha, or None."""
        if self.kind != "cusum":
            raise NotImplementedError("update_many is the e-CUSUM's scan; feed an e-SR with update()")
        if len(log_ls) == 0:
            return None
        w0 = np.maximum(np.asarray(self._log_m), 0.0)  # W_0 = max(log M_0, 0)
        c = np.cumsum(log_ls, axis=0)
        # log M_t = C_t - min(-W_0, C_1, ..., C_{t-1})
        prev_min = np.minimum.accumulate(np.vstack([-w0[None, :], c[:-1]]), axis=0)
        log_m = c - prev_min
        self._log_m = [float(x) for x in log_m[-1]]
        self.n += len(log_ls)
        top = log_m.max(axis=1, keepdims=True)
        mix = top[:, 0] + np.log(np.exp(log_m - top).mean(axis=1))
        hits = np.flatnonzero(mix >= math.log(1.0 / self.alpha))
        return int(hits[0]) if len(hits) else None

    @property
    def log_statistic(self) -> float:
        return _log_mean_exp(self._log_m)

    @property
    def statistic(self) -> float:
        """The mixture e-detector M_t (0 before the first observation)."""
        return math.exp(min(self.log_statistic, 700.0))

    def above(self, level: float) -> bool:
        """Whether log M_t > level. A mean of n exps is at most their max and at least 1/n of it,
        so most updates need no logarithm: none below the level, none a margin (1/8, far past any
        rounding at these magnitudes) beyond level + log n."""
        log_m = self._log_m
        top = max(log_m)
        if not top > level:
            return False
        if len(log_m) < len(_LOG_N) and level + _LOG_N[len(log_m)] + 0.125 < top < 1e9:
            return True
        return _log_mean_exp(log_m) > level

    @property
    def alarm(self) -> bool:
        """M_t >= 1/alpha. The mean of exps is at most their max, so the logarithm of the mean
        is needed only once the largest log M_t reaches the level."""
        level = _level(self.alpha)
        return max(self._log_m) >= level and _log_mean_exp(self._log_m) >= level

    def status(self) -> dict[str, Any]:
        return {"statistic": round(self.statistic, 6), "level": 1.0 / self.alpha, "alarm": self.alarm,
                "n": self.n}


class BernoulliECusum(_LikelihoodRatioEDetector):
    """Detects a rise of a Bernoulli rate above a frozen baseline rate p0.

    Mixes e-detectors for the alternatives p0 * r for each r in `rises`.

    `phi` tempers it for dependent observations (a quasi-likelihood CUSUM): each log
    likelihood ratio is divided by phi, the stream's design effect (stats.dispersion). For
    observations that cluster in units of design effect phi, the tempered sum has the drift
    and variance of an independent stream's, so the run-length guarantee holds again
    (asymptotically: many units per detection window); phi = 1 is the plain e-CUSUM, exact
    for independent observations.
    """

    def __init__(self, p0: float, rises: Sequence[float], alpha: float, kind: Kind = "cusum",
                 phi: float = 1.0) -> None:
        self.p0 = p0
        self.rises = tuple(rises)
        self.alpha = alpha
        self.kind = kind
        self.phi = phi
        self._reset()

    def _reset(self) -> None:
        p0 = min(max(self.p0, 1e-9), 1 - 1e-9)
        alts = [min(p0 * r, 1 - 1e-6) for r in self.rises]
        # An alternative with no room above p0 (p0 near 1) is no rise: its ratio is 1, never a
        # ratio favouring a fall, which would alarm on the first observation of 0.
        self._ll1 = [math.log(p1 / p0) if p1 > p0 else 0.0 for p1 in alts]
        self._ll0 = [math.log((1 - p1) / (1 - p0)) if p1 > p0 else 0.0 for p1 in alts]
        self._start(len(alts))
        self.temper(self.phi)

    def temper(self, phi: float) -> BernoulliECusum:
        """Divide every later log likelihood ratio by `phi` (>= 1); the statistic so far stays."""
        self.phi = max(phi, 1.0)
        self._s1 = [x / self.phi for x in self._ll1]
        self._s0 = [x / self.phi for x in self._ll0]
        return self

    def _advance(self, x: bool) -> list[float]:
        """`_step` on observation x (inline for the e-CUSUM: a dozen run per action); the new log M."""
        ls = self._s1 if x else self._s0
        if self.kind != "cusum":
            self._step(ls)
            return self._log_m
        log_m = self._log_m = [(m if m > 0.0 else 0.0) + ll for m, ll in zip(self._log_m, ls, strict=True)]
        self.n += 1
        return log_m

    def update(self, x: bool, t: float | None = None) -> BernoulliECusum:
        self._advance(x)
        return self

    def step(self, x: bool) -> bool:
        """`update(x)`, then whether it alarms (`alarm`)."""
        if self.kind == "cusum":  # `_advance`, inline
            log_m = self._log_m = [(m if m > 0.0 else 0.0) + ll
                                   for m, ll in zip(self._log_m, self._s1 if x else self._s0, strict=True)]
            self.n += 1
        else:
            log_m = self._advance(x)
        level = _level(self.alpha)
        return max(log_m) >= level and _log_mean_exp(log_m) >= level

    def update_many(self, xs: np.ndarray) -> int | None:
        """`update` for each of `xs` in turn; returns the index of the first alarm, or None."""
        x = np.asarray(xs, dtype=bool)[:, None]
        return self._scan(np.where(x, np.asarray(self._s1)[None, :], np.asarray(self._s0)[None, :]))


class PoissonECusum(_LikelihoodRatioEDetector):
    """Detects a rise of a Poisson count per unit (follow-ups per subject-day, say)
    above a frozen baseline mean `mean0`, mixed over alternatives mean0 * r."""

    def __init__(self, mean0: float, rises: Sequence[float], alpha: float, kind: Kind = "cusum") -> None:
        self.mean0 = mean0
        self.rises = tuple(rises)
        self.alpha = alpha
        self.kind = kind
        self._reset()

    def _reset(self) -> None:
        m0 = max(self.mean0, 1e-9)
        self._log_r = [math.log(r) for r in self.rises]
        self._drift = [-(r - 1.0) * m0 for r in self.rises]
        self._start(len(self.rises))

    def update(self, x: int, t: float | None = None) -> PoissonECusum:
        # log L = x log r - (r - 1) mean0; x! cancels in the ratio
        self._step([x * lr + d for lr, d in zip(self._log_r, self._drift, strict=True)])
        return self

    def update_many(self, xs: np.ndarray) -> int | None:
        x = np.asarray(xs, dtype=float)[:, None]
        return self._scan(x * np.asarray(self._log_r)[None, :] + np.asarray(self._drift)[None, :])


class CategoricalECusum(Detector):
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
        self._log_m = -math.inf
        self.n = 0

    def category(self, x: str) -> str:
        return x if x in self.p0 else self.OTHER

    def update(self, x: str, t: float | None = None) -> CategoricalECusum:
        if self._log_m < 0.0:  # the CUSUM restarted last step: the plug-in forgets the past
            self._counts.clear()
            self._n = 0
        c = self.category(x)
        p0 = self.p0[c]
        q = (self._counts.get(c, 0) + self.prior_strength * p0) / (self._n + self.prior_strength)
        self._log_m = max(self._log_m, 0.0) + math.log(q / p0)
        self._counts[c] = self._counts.get(c, 0) + 1
        self._n += 1
        self.n += 1
        return self

    @property
    def log_statistic(self) -> float:
        return self._log_m

    @property
    def statistic(self) -> float:
        return math.exp(min(self._log_m, 700.0))

    @property
    def alarm(self) -> bool:
        return self._log_m >= math.log(1.0 / self.alpha)

    def status(self) -> dict[str, Any]:
        top, share, base = self.top_rise()
        return {"statistic": round(self.statistic, 6), "level": 1.0 / self.alpha, "alarm": self.alarm,
                "n": self.n, "leading": top, "share": round(share, 6), "baseline_share": round(base, 6)}

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


class TabularCusum(Detector):
    """Page's tabular CUSUM on standardized observations z = (x - mu0) / sigma:
    S+ = max(0, S+ + z - k), and with `two_sided` also S- = max(0, S- - z - k);
    alarm when either exceeds h. A classical reference detector with no
    e-value guarantee: its run lengths are those of Montgomery's tables
    (k = 0.5, two-sided: h = 4 gives ARL0 168, h = 5 gives 465)."""

    def __init__(self, mu0: float, sigma: float, k: float = 0.5, h: float = 5.0, two_sided: bool = False) -> None:
        self.mu0 = mu0
        self.sigma = sigma
        self.k = k
        self.h = h
        self.two_sided = two_sided
        self._reset()

    def _reset(self) -> None:
        self.s = 0.0
        self.s_low = 0.0
        self.n = 0

    def update(self, x: float, t: float | None = None) -> TabularCusum:
        z = (x - self.mu0) / self.sigma
        self.s = max(0.0, self.s + z - self.k)
        if self.two_sided:
            self.s_low = max(0.0, self.s_low - z - self.k)
        self.n += 1
        return self

    @property
    def statistic(self) -> float:
        return max(self.s, self.s_low)

    def status(self) -> dict[str, Any]:
        return {"statistic": round(self.statistic, 6), "level": self.h, "alarm": self.alarm, "n": self.n}

    @property
    def alarm(self) -> bool:
        return self.statistic > self.h
