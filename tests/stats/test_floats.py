"""stats/floats.one: one object per small whole-numbered float, nothing else changed."""

from __future__ import annotations

import math
import random

from missionwatch.stats.floats import LARGEST, one


def test_whole_numbered_floats_share_one_object() -> None:
    for v in (1.0, 2.0, -3.0, 25.0, float(LARGEST), -float(LARGEST)):
        a, b = v + 0.0 * random.random(), float(str(v))  # two separate objects of the value
        assert one(a) is one(b) and one(a) == v and type(one(a)) is float


def test_anything_else_comes_back_as_it_was() -> None:
    """Ints stay ints (1 == 1.0 as a dict key), the sign of zero stays, NaN and infinities,
    fractions and floats beyond the table pass untouched: the very object given."""
    rng = random.Random(20261202)
    given: list[object] = [0, 1, -1, 4096, True, False, 0.0, -0.0, math.nan, math.inf, -math.inf, 0.5, 1e308,
                           5e-324, float(LARGEST + 1), -float(LARGEST + 1), 2.0**53, 1.0000000000000002]
    given += [rng.uniform(-1e6, 1e6) for _ in range(2000)] + [rng.randint(-10**20, 10**20) for _ in range(500)]
    for x in given:
        got = one(x)  # type: ignore[type-var]
        whole_in_table = type(x) is float and x == x and x != 0 and abs(x) <= LARGEST and x == int(x)
        if not whole_in_table:
            assert got is x, x
        assert type(got) is type(x) and (got == x or (got != got and x != x))
        if type(x) is float and x == 0:
            assert math.copysign(1.0, got) == math.copysign(1.0, x)  # type: ignore[arg-type]


def test_sums_kept_through_it_equal_plain_sums() -> None:
    """Running sums as the monitor keeps them, bit for bit (summing order unchanged)."""
    rng = random.Random(7)
    xs = [rng.choice([1.0, 0.5, 2.0, 0.1, -1.0, 3, 1e-17]) for _ in range(10_000)]
    plain = kept = 0.0
    for x in xs:
        plain += x
        kept = one(kept + x)
        assert kept == plain and math.copysign(1.0, kept) == math.copysign(1.0, plain)
