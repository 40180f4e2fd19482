"""Sequential statistics: pure, O(1) per update, no I/O and no clock.

Every class follows one small shape (River's): settings are stored under their
argument names, `_reset()` builds state, `update(x, t=...)` does the arithmetic
and returns self, and verdicts are read-only properties.
"""

from .betting import BettingCS, strict_linear, strict_linear_e_value
from .cs import (
    MSPRT,
    MeanStat,
    RatioStat,
    linear_cs,
    mean_cs,
    normal_mixture_halfwidth,
    wilson_upper,
)
from .edetect import BernoulliECusum, CategoricalECusum, TabularCusum

__all__ = [
    "MSPRT",
    "BernoulliECusum",
    "BettingCS",
    "CategoricalECusum",
    "MeanStat",
    "RatioStat",
    "TabularCusum",
    "linear_cs",
    "mean_cs",
    "normal_mixture_halfwidth",
    "strict_linear",
    "strict_linear_e_value",
    "wilson_upper",
]
