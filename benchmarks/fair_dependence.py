"""Fairness under dependent traffic: the fairness delta on a per-action metric (an escalation
rate) over the dependence scenarios of benchmarks/traffic.py, fair and with a planted gap.
Writes the "Fairness under dependence" section of benchmarks/RESULTS.md.

    python benchmarks/fair_dependence.py                 # full: 500 missions per setting
    python benchmarks/fair_dependence.py --missions 20   # a quick look (does not write)

Each action's escalation probability is 0.05 times a multiplier shared by what the scenario
makes actions share: `iid` none; `contacts` the contact (Gamma(2, 1/2) per contact of 1-3
actions); `heavy` the subject (Gamma(1/2, 2) per subject; 1% of subjects get 30% of the
actions); `waves` the wave of one template (Gamma(2, 1/2) per run of 200-2,000 actions);
`cycles` the hour of the day (1 + 0.5 sin). Four cohorts (subject mod 4), equal in the
population: fair means no cohort's expected rate differs. The gap setting raises cohort 3's
rate by 60% (0.05 -> 0.08) from the first action.

Detector: FairnessDelta as the monitor runs it (one rule, harm both, max_gap 0.005, spec
alpha 0.05 over the four cohorts, each action's subject named so the intervals count
subjects), judged whenever the monitor would (`due`); beside it the same detector taking
every action as independent (what it did before). Delays in actions after the start.
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # as a script: the repository root

from benchmarks.detection import HEADER, HORIZON, Result
from benchmarks.results import write_section

from benchmarks import traffic
from missionwatch.detect.fairness import FairnessDelta
from missionwatch.spec import FairnessRule

RULE = FairnessRule(metric="escalation_rate", harm="both", max_gap=0.005)
ALPHA = 0.05
COHORTS = 4
RATE = 0.05
GAP = 1.6
"""The planted cohort's rate, relative to the others'."""


def _runs(values: np.ndarray) -> np.ndarray:
    """The index of each element's run of equal consecutive values."""
    return np.concatenate([[0], np.cumsum(values[1:] != values[:-1])])


def escalations(scenario: str, rng: np.random.Generator, gap: bool, n: int = HORIZON) -> tuple[np.ndarray, ...]:
    """(subject, cohort, 0/1 escalation) per action of one mission of `scenario`."""
    tr = traffic.generate(scenario, n, rng)
    subject = tr.subject
    if scenario == "contacts":
        unit = _runs(subject)
        mult = rng.gamma(2.0, 0.5, unit[-1] + 1)[unit]
    elif scenario == "heavy":
        mult = rng.gamma(0.5, 2.0, traffic.SUBJECTS)[subject]
    elif scenario == "waves":
        unit = _runs(tr.template)
        mult = rng.gamma(2.0, 0.5, unit[-1] + 1)[unit]
    elif scenario == "cycles":
        mult = 1 + 0.5 * np.sin(2 * np.pi * (tr.hour % 24 - 9) / 24)
    else:
        mult = np.ones(n)
    cohort = subject % COHORTS
    p = RATE * mult * np.where(gap & (cohort == COHORTS - 1), GAP, 1.0)
    return subject, cohort, (rng.random(n) < np.minimum(p, 1.0)).astype(float)


def first_beyond(subject: np.ndarray, cohort: np.ndarray, x: np.ndarray, by_subject: bool) -> int | None:
    """The action after which a cohort was first judged beyond, or None."""
    fd = FairnessDelta(RULE, "cohort", ALPHA / COHORTS, min_samples=30, max_cohorts=COHORTS)
    sums: dict[int, tuple[float, int]] = {}
    names = [str(c) for c in range(COHORTS)]
    for i, (s, c, v) in enumerate(zip(subject.tolist(), cohort.tolist(), x.tolist(), strict=True)):
        before = sums.get(s, (0.0, 0))
        sums[s] = (before[0] + v, before[1] + 1)
        name = names[c]
        fd.update(name, v, before=before if by_subject else None)
        if fd.due(name) and fd.evaluate(name).verdict == "beyond":
            return i + 1
    return None


def run(scenario: str, gap: bool, missions: int, seed: int) -> list[Result]:
    rng = np.random.default_rng(seed)
    found: dict[bool, list[int | None]] = {True: [], False: []}
    spent = 0.0
    for _ in range(missions):
        subject, cohort, x = escalations(scenario, rng, gap)
        for by_subject in (True, False):
            t0 = time.perf_counter()
            found[by_subject].append(first_beyond(subject, cohort, x, by_subject))
            spent += time.perf_counter() - t0
    name = f"{scenario}: " + (f"cohort 3 at {GAP:g}x ({RATE:g} -> {RATE * GAP:g})" if gap else "fair (null)")
    out = []
    for by_subject in (True, False):
        who = "missionwatch, by subject" if by_subject else "the same, assuming independent actions"
        hits = found[by_subject]
        out.append(Result(name, f"fairness delta: {who}", missions, hits, missions * HORIZON,
                          0 if gap else sum(h is not None for h in hits), not gap))
    return out


def run_all(missions: int, seed: int, progress: Callable[[str], None] = print) -> list[Result]:
    results: list[Result] = []
    for i, scenario in enumerate(traffic.SCENARIOS):
        for j, gap in enumerate((False, True)):
            progress(f"{scenario}, {'gap' if gap else 'fair'}")
            results.extend(run(scenario, gap, missions, seed + 10 * i + j))
    return results


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--missions", type=int, default=500, help="missions per setting (default 500, about "
                    "25 minutes on one core); fewer than 500: printed, not written")
    ap.add_argument("--seed", type=int, default=20261201)
    args = ap.parse_args()
    t0 = time.perf_counter()
    results = run_all(args.missions, args.seed,
                      progress=lambda m: print(f"[{time.perf_counter() - t0:6.0f}s] {m}", flush=True))
    table = "\n".join([HEADER, *(r.row() for r in results)])
    section = f"""## Fairness under dependence

`python benchmarks/fair_dependence.py --missions {args.missions} --seed {args.seed}` on {platform.machine()},
Python {platform.python_version()}: {args.missions} seeded missions per setting, {HORIZON:,} actions each,
{time.perf_counter() - t0:,.0f} s in all. Scenarios and the metric: the script's docstring. Rule: harm both,
max_gap {RULE.max_gap}; spec alpha {ALPHA} over {COHORTS} cohorts. A fair mission must escalate with
probability at most {ALPHA} (the promise), the upper Clopper-Pearson bound at most {1.4 * ALPHA:.2f}.
Delays: actions from the first to the first `beyond`.

{table}
"""
    print(section)
    if args.missions >= 500:
        write_section("Fairness under dependence", section)


if __name__ == "__main__":
    main()
