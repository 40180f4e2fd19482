"""Peak memory of `missionwatch replay`, one subprocess per case, side by side in one run.

Each case is a generated campaign (src/missionwatch/sim.py), written to a file and
replayed by `python -m missionwatch.cli replay` in a child process of this script; its
peak resident set size is the child's own `ru_maxrss` (os.wait4), so the cases do not
blur into each other. Several missions are interleaved record by record, as a gateway
serving them at once would send them.

Target (issue 10, "Hostile input"): peak RSS of a replay over 200,000 receipts in one
mission within 1.5x of that over 20,000. Writes the "Memory" section of
benchmarks/RESULTS.md.

    python benchmarks/memory.py [--cases floor 1x20k 1x200k 5000x40] [--signed] [--keep DIR]

A new case is one more `Case` in CASES, a new target one more `Ratio` in RATIOS.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # as a script: the repository root

from benchmarks.results import write_section

from missionwatch.signing import Keyring, Signer
from missionwatch.sim import Campaign, generate

ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Case:
    """One generated input: `missions` simulated campaigns of `actions` action receipts each
    (plus their registrations and outcomes), `subjects` customers per mission."""

    name: str
    missions: int
    actions: int
    subjects: int

    @property
    def receipts(self) -> int:
        return self.missions * self.actions

    def describe(self) -> str:
        if self.missions == 1:
            return f"1 mission, {self.actions:,} receipts"
        return f"{self.missions:,} missions x {self.actions:,} receipts"


@dataclass(frozen=True)
class Ratio:
    """Peak RSS of case `over` / peak RSS of case `under`; at most `target`."""

    over: str
    under: str
    target: float
    what: str


CASES = (
    Case("floor", 1, 200, 50),  # the interpreter, the imports, DuckDB: what no input size changes
    Case("1x20k", 1, 20_000, 5_000),
    Case("1x200k", 1, 200_000, 50_000),
    Case("5000x40", 5_000, 40, 10),
)
RATIOS = (Ratio("1x200k", "1x20k", 1.5, "200,000 receipts / 20,000, one mission"),)


@dataclass
class Run:
    case: Case
    lines: int
    input_bytes: int
    seconds: float
    peak_rss_kib: int


def records(case: Case) -> Iterator[dict[str, Any]]:
    """The case's records: each mission's campaign in its own order, missions interleaved."""
    streams = [generate(Campaign(mission_id=f"mission-{i:05d}" if case.missions > 1 else "retention-sim",
                                 seed=7 + i, actions=case.actions, subjects=case.subjects,
                                 discount_gap="age_band=65+"))
               for i in range(case.missions)]
    while streams:
        alive = []
        for s in streams:
            rec = next(s, None)
            if rec is not None:
                yield rec
                alive.append(s)
        streams = alive


def write_input(case: Case, path: Path, gate: Signer | None) -> int:
    n = 0
    with path.open("w", encoding="utf-8") as f:
        for rec in records(case):
            f.write(json.dumps(gate.sign(rec) if gate else rec, separators=(",", ":")) + "\n")
            n += 1
    return n


def replay(case: Case, input_path: Path, lines: int, out: Path, keys: Path | None) -> Run:
    """One `missionwatch replay` in a child process; its peak RSS from the kernel."""
    args = ["--keys", str(keys)] if keys else ["--allow-unsigned"]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, (str(ROOT / "src"),
                                                                      os.environ.get("PYTHONPATH"))))}
    with (out.parent / f"{out.name}.stderr").open("wb") as stderr:
        t = time.perf_counter()
        proc = subprocess.Popen([sys.executable, "-m", "missionwatch.cli", "replay", str(input_path),
                                 "--out", str(out), *args], stdout=subprocess.DEVNULL, stderr=stderr, env=env)
        _, status, usage = os.wait4(proc.pid, 0)
        seconds = time.perf_counter() - t
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"replay of {case.name} exited {proc.returncode}: "
                         f"{(out.parent / f'{out.name}.stderr').read_text()[-2000:]}")
    if (out / "rejected.jsonl").stat().st_size:
        raise SystemExit(f"replay of {case.name} rejected records: see {out / 'rejected.jsonl'}")
    return Run(case, lines, input_path.stat().st_size, seconds, usage.ru_maxrss)  # KiB on Linux


def mib(kib: float) -> str:
    return f"{kib / 1024:,.0f}"


def section(runs: dict[str, Run], args: argparse.Namespace) -> str:
    floor = runs.get("floor")

    def above(r: Run) -> str:
        if floor is None or r is floor:
            return "| - | - |"
        extra = r.peak_rss_kib - floor.peak_rss_kib
        return f"| {mib(extra)} | {extra * 1024 / r.case.receipts:,.0f} |"

    rows = "\n".join(
        f"| {r.case.describe()} | {r.lines:,} | {r.input_bytes / 2**20:,.0f} | {r.seconds:,.1f} | "
        f"{mib(r.peak_rss_kib)} {above(r)}" for r in runs.values())
    ratios = []
    for q in RATIOS:
        if q.over in runs and q.under in runs:
            x = runs[q.over].peak_rss_kib / runs[q.under].peak_rss_kib
            ratios.append(f"{q.what}: **{x:.2f}x** (target at most {q.target:.2f}x: "
                          f"{'met' if x <= q.target else 'NOT met'}).")
    kind = "signed (`--keys`, default `--workers`)" if args.signed else "unsigned (`--allow-unsigned`)"
    return f"""## Memory

`python benchmarks/memory.py{' --signed' if args.signed else ''}` on {platform.machine()},
Python {platform.python_version()}, {os.cpu_count()} cores: `missionwatch replay` over generated
retention campaigns (src/missionwatch/sim.py; records {kind}, missions interleaved record by
record), each in its own child process, peak RSS from the kernel (`ru_maxrss` of that child; with
verify workers, the largest process of its tree). Receipts are action receipts; the input also
holds each mission's registration and the outcomes that follow its actions. Above the floor:
peak RSS minus that of the 200-receipt case (the interpreter, the imports, DuckDB).

| input | lines | input MiB | seconds | peak RSS MiB | above the floor, MiB | above the floor, bytes per receipt |
| --- | ---: | ---: | ---: | ---: | ---: | ---: |
{rows}

{' '.join(ratios)}
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cases", nargs="+", choices=[c.name for c in CASES], default=[c.name for c in CASES])
    ap.add_argument("--signed", action="store_true", help="sign the inputs (replay checks them)")
    ap.add_argument("--keep", type=Path, default=None, help="generate into this directory and keep it")
    args = ap.parse_args()
    gate = Signer.generate("gate-1") if args.signed else None
    with tempfile.TemporaryDirectory(prefix="mw-memory-") as tmp:
        work = args.keep or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        keys = None
        if gate:
            ring = Keyring()
            ring.add(gate.key_id, gate.public_key, "gate")
            keys = work / "keyring.json"
            keys.write_text(json.dumps(ring.to_json()))
        runs: dict[str, Run] = {}
        for case in (c for c in CASES if c.name in args.cases):
            path = work / f"{case.name}.jsonl"
            lines = write_input(case, path, gate)
            runs[case.name] = replay(case, path, lines, work / f"out-{case.name}", keys)
            r = runs[case.name]
            print(f"{case.describe()}: {lines:,} lines, {r.seconds:.1f} s, peak RSS {mib(r.peak_rss_kib)} MiB",
                  flush=True)
            if not args.keep:
                path.unlink()
    text = section(runs, args)
    write_section("Memory", text)
    print(text)


if __name__ == "__main__":
    main()
