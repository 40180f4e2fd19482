"""Peak memory of `missionwatch replay`, one subprocess per case, side by side in one run.

Each case is a generated campaign (src/missionwatch/sim.py), written to a file and
replayed by `python -m missionwatch.cli replay` in a child process of this script; its
peak resident set size is the child's own `ru_maxrss` (os.wait4), so the cases do not
blur into each other. Several missions are interleaved record by record, as a gateway
serving them at once would send them.

Targets: a mission's memory is flat in its receipts once past its baseline (issue 11,
"One view of a mission"): peak RSS of a replay over 200,000 receipts to 5,000 customers
in one mission within 1.2x of that over 20,000 to the same customers (issue 10 asked
1.5x with the customers growing too). And the RSS of 10,000 missions of 12 cohorts each.
Writes the "Memory" section of benchmarks/RESULTS.md.

    python benchmarks/memory.py [--cases NAME ...] [--signed] [--keep DIR]

Cases: floor, 1x20k, 1x200k, 1x200k-subjects, 10000x1, 10000x12, 10000x12-own (replays with `--no-ledger`:
the monitor's own memory), floor-worker, 10000x12-worker (a streaming worker's state: the monitor and
each mission's console history, fed by `StreamCore.process` in a process that imported the worker's
modules), 1x20k-ledger, 1x200k-ledger (ledger.duckdb written too).

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
import traceback
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
    cohorts: int | None = None
    """Subjects fall into this many cohorts (age band x region), instead of the simulator's
    draw over segment, tenure, age and region."""
    ledger: bool = False
    """Write ledger.duckdb too (without: `--no-ledger`, the memory of the monitor itself)."""
    worker: bool = False
    """Fed to a streaming worker's state instead of a replay: `StreamCore.process` of every line
    (one partition), so each mission's console history and live ledger are held beside its
    monitor, in a process that imported what `missionwatch run` imports (Faust, aiokafka); only
    Kafka itself is absent."""
    own_customers: bool = False
    """Each mission acts on customers of its own (ids prefixed with its own), not on the same
    `subjects` customers as every other mission (as a company's campaigns share its customers;
    the monitor then holds one copy of each id)."""

    @property
    def receipts(self) -> int:
        return self.missions * self.actions

    def describe(self) -> str:
        to = f"{self.subjects:,} customers" + (f" in {self.cohorts} cohorts" if self.cohorts else "")
        to += ", with ledger.duckdb" if self.ledger else ""
        to += ", each mission's own" if self.own_customers else ""
        to += ", in a streaming worker's state" if self.worker else ""
        if self.missions == 1:
            return f"1 mission, {self.actions:,} receipts to {to}"
        return f"{self.missions:,} missions x {self.actions:,} receipts to {to}"


@dataclass(frozen=True)
class Ratio:
    """Peak RSS of case `over` / peak RSS of case `under`; at most `target` (None: reported)."""

    over: str
    under: str
    target: float | None
    what: str


CASES = (
    Case("floor", 1, 200, 50),  # the interpreter and the imports: what no input size changes
    Case("1x20k", 1, 20_000, 5_000),
    Case("1x200k", 1, 200_000, 5_000),
    Case("1x200k-subjects", 1, 200_000, 50_000),
    Case("10000x1", 10_000, 24, 24, cohorts=1),
    Case("10000x12", 10_000, 24, 24, cohorts=12),
    Case("10000x12-own", 10_000, 24, 24, cohorts=12, own_customers=True),
    Case("floor-worker", 1, 200, 50, worker=True),
    Case("10000x12-worker", 10_000, 24, 24, cohorts=12, worker=True),
    Case("1x20k-ledger", 1, 20_000, 5_000, ledger=True),
    Case("1x200k-ledger", 1, 200_000, 50_000, ledger=True),
)
RATIOS = (Ratio("1x200k-ledger", "1x20k-ledger", 1.5, "Replay writing ledger.duckdb, 200,000 receipts to "
                "50,000 customers / 20,000 to 5,000 (issue 10's measure)"),
          Ratio("1x200k", "1x20k", None, "The monitor alone, 200,000 receipts / 20,000, the same 5,000 customers"),
          Ratio("1x200k-subjects", "1x20k", None, "The monitor alone, 200,000 receipts to 50,000 customers / "
                "20,000 to 5,000"))
FLAT = 0.05
"""One mission's RSS without its id table may grow by at most this share of its RSS at
20,000 receipts on the way to 200,000 (issue 11: flat once past the baseline)."""
AGES = ("18-34", "35-49", "50-64", "65+")
REGIONS = ("north", "south", "east")


def recohort(rec: dict[str, Any], cohorts: int) -> dict[str, Any]:
    """The record with its subject moved into cohort (customer number mod `cohorts`): one of
    4 age bands x 3 regions, segment and tenure fixed."""
    subject = rec.get("subject")
    if subject is None or "cohort" not in subject:
        return rec
    k = int(subject["id"].rsplit("-", 1)[1]) % cohorts
    cohort = {"segment": "smb", "tenure_band": "m4-12", "age_band": AGES[k % 4], "region": REGIONS[k // 4 % 3]}
    return {**rec, "subject": {**subject, "cohort": cohort}}


@dataclass(frozen=True)
class Cost:
    """(RSS of case `over` - RSS of case `under`) / `units`(over, under): bytes per `what`."""

    over: str
    under: str
    what: str
    units: Any


COSTS = (
    Cost("1x200k", "1x20k", "receipt past the baseline (one mission, the same customers)",
         lambda o, u: o.case.receipts - u.case.receipts),
    Cost("1x200k-subjects", "1x200k", "customer (one mission)", lambda o, u: o.case.subjects - u.case.subjects),
    Cost("10000x1", "floor", "mission (24 receipts, one cohort)", lambda o, u: o.case.missions),
    Cost("10000x12", "10000x1", "cohort of a mission (11 more cohorts in each of 10,000 missions)",
         lambda o, u: o.case.missions * (o.case.cohorts - u.case.cohorts)),
    Cost("10000x12-own", "10000x12", "customer of a mission whose id no other mission shares",
         lambda o, u: o.case.missions * o.case.subjects),
    Cost("10000x12-worker", "floor-worker", "mission of 12 cohorts in a streaming worker (its monitor, console "
         "history and live ledger)", lambda o, u: o.case.missions),
)


@dataclass
class Run:
    case: Case
    lines: int
    input_bytes: int
    seconds: float
    peak_rss_kib: int


def own_customer(rec: dict[str, Any]) -> dict[str, Any]:
    """The record with its subject's id made its mission's own."""
    subject = rec.get("subject")
    if subject is None:
        return rec
    return {**rec, "subject": {**subject, "id": f"{rec['mission_id']}/{subject['id']}"}}


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
                rec = recohort(rec, case.cohorts) if case.cohorts else rec
                yield own_customer(rec) if case.own_customers else rec
                alive.append(s)
        streams = alive


def write_input(case: Case, path: Path, gate: Signer | None) -> int:
    """Write the case's records, one JSON line each (signed by `gate`, if any); how many.

    Done in a forked child: generating 10,000 missions at once grows this process by ~90 MiB, and
    a process started by one that large inherits its size as the floor of its own `ru_maxrss`
    (Linux counts the pages it was forked with), which would lift a small case's peak."""
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            with path.open("w", encoding="utf-8") as f:
                for rec in records(case):
                    f.write(json.dumps(gate.sign(rec) if gate else rec, separators=(",", ":")) + "\n")
            code = 0
        except BaseException:
            traceback.print_exc()
        finally:
            os._exit(code)
    if os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) != 0:
        raise SystemExit(f"generating the input of {case.name} failed")
    with path.open("rb") as f:
        return sum(1 for _ in f)


def replay(case: Case, input_path: Path, lines: int, out: Path, keys: Path | None) -> Run:
    """One `missionwatch replay` (or, for a worker case, `worker_child`) in a child process; its
    peak RSS from the kernel."""
    args = ["--keys", str(keys)] if keys else ["--allow-unsigned"]
    args += [] if case.ledger else ["--no-ledger"]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, (str(ROOT), str(ROOT / "src"),
                                                                      os.environ.get("PYTHONPATH"))))}
    command = ([sys.executable, str(Path(__file__).resolve()), "--worker-child", str(input_path), str(out),
                *(["--keys", str(keys)] if keys else [])] if case.worker else
               [sys.executable, "-m", "missionwatch.cli", "replay", str(input_path), "--out", str(out), *args])
    with (out.parent / f"{out.name}.stderr").open("wb") as stderr:
        t = time.perf_counter()
        proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=stderr, env=env)
        _, status, usage = os.wait4(proc.pid, 0)
        seconds = time.perf_counter() - t
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"replay of {case.name} exited {proc.returncode}: "
                         f"{(out.parent / f'{out.name}.stderr').read_text()[-2000:]}")
    if (out / "rejected.jsonl").stat().st_size:
        raise SystemExit(f"replay of {case.name} rejected records: see {out / 'rejected.jsonl'}")
    return Run(case, lines, input_path.stat().st_size, seconds, usage.ru_maxrss)  # KiB on Linux


WORKER_COMMIT_EVERY = 5_000
"""Messages between the worker case's live-ledger commits: `missionwatch run` commits every
`--ledger-every` 5 s, ~5,000 messages at the stream's rate of single records on this machine."""


def worker_child(input_path: Path, out: Path, keys: Path | None) -> None:
    """In a child process: a streaming worker's state fed the input as `missionwatch run` feeds it
    with its defaults (stream/app.py's monitor and StreamCore, its live ledger under `out`/ledger
    committed every `WORKER_COMMIT_EVERY` messages, one partition holding every mission), what
    it would publish dropped; rejections go to `out`/rejected.jsonl as a replay's."""
    from missionwatch.monitor import Monitor
    from missionwatch.spec import SpecRegistry
    from missionwatch.stream import app  # noqa: F401  (what a worker imports: Faust, aiokafka)
    from missionwatch.stream.core import REJECTED, StreamCore

    registry = SpecRegistry.load_dir(ROOT / "detectors")
    signer, keyring = Signer.generate("monitor"), Keyring.load(keys) if keys else Keyring()
    out.mkdir(parents=True, exist_ok=True)
    core = StreamCore(lambda: Monitor(registry, signer=signer, keyring=keyring, allow_unsigned=keys is None),
                      ledger=out / "ledger")
    core.assign([0])
    core.activate(0)

    def commit() -> None:
        for led in core.ledgers.jobs():
            if not led.write():
                raise SystemExit(f"the live ledger's commit failed (see {out / 'ledger'})")

    with input_path.open("rb") as f, (out / "rejected.jsonl").open("wb") as rejected:
        for offset, line in enumerate(f):
            for pub in core.process(0, offset, line.rstrip(b"\n")):
                if pub.topic == REJECTED:
                    rejected.write(pub.value + b"\n")
            if offset % WORKER_COMMIT_EVERY == WORKER_COMMIT_EVERY - 1:
                commit()
    commit()
    core.ledgers.close(0)


CHECKPOINTS = (20_000, 50_000, 100_000, 150_000, 200_000)


def curve_child(input_path: Path) -> None:
    """In a child process: feed the input to a monitor (no writers); at each checkpoint of
    action receipts print the resident set size now and the bytes of the mission's id table."""
    from missionwatch.monitor import Monitor
    from missionwatch.spec import SpecRegistry

    monitor = Monitor(SpecRegistry.load_dir(ROOT / "detectors"), signer=Signer.generate("m"), allow_unsigned=True)
    actions = 0
    with input_path.open("rb") as f:
        for line in f:
            monitor.feed(line)
            if b'"missionwatch/action@1"' in line:
                actions += 1
                if actions in CHECKPOINTS:
                    rss = next(int(x.split()[1]) for x in Path("/proc/self/status").read_text().splitlines()
                               if x.startswith("VmRSS:"))
                    ids = sum(ms.ids.nbytes for ms in monitor.missions.values())
                    print(json.dumps({"receipts": actions, "rss_kib": rss, "ids_bytes": ids}), flush=True)


def curve(input_path: Path) -> list[dict[str, int]]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, (str(ROOT / "src"),
                                                                      os.environ.get("PYTHONPATH"))))}
    out = subprocess.run([sys.executable, __file__, "--curve-child", str(input_path)], env=env,
                         capture_output=True, text=True, check=True)
    return [json.loads(x) for x in out.stdout.splitlines()]


def curve_section(points: list[dict[str, int]]) -> str:
    if len(points) < 2:
        return ""
    rows = "\n".join(f"| {p['receipts']:,} | {p['rss_kib'] / 1024:,.1f} | {p['ids_bytes'] / 2**20:,.1f} | "
                     f"{(p['rss_kib'] * 1024 - p['ids_bytes']) / 2**20:,.1f} |" for p in points)
    first, last = points[0], points[-1]
    grow = (last["rss_kib"] - first["rss_kib"]) * 1024 / (last["receipts"] - first["receipts"])
    rest = ((last["rss_kib"] * 1024 - last["ids_bytes"]) - (first["rss_kib"] * 1024 - first["ids_bytes"])) / 2**20
    return f"""
### One mission as it grows

The 200,000-receipt mission (5,000 customers) fed to a monitor in one child process, no writers;
its resident set size at each count of action receipts (VmRSS, now, not peak), and the bytes of
its id table (exact deduplication: every accepted id, 16 bytes a slot, at most half full).

| action receipts | RSS MiB | id table MiB | RSS without the id table, MiB |
| ---: | ---: | ---: | ---: |
{rows}

From {first['receipts']:,} to {last['receipts']:,} receipts: **{grow:,.0f} bytes per receipt** of RSS, nearly all
of it the id table; without it, **{rest:+,.1f} MiB** in all (target: at most {FLAT:.0%} of the RSS at
{first['receipts']:,}, {first['rss_kib'] * FLAT / 1024:.1f} MiB: {'met' if rest * 1024 <= first['rss_kib'] * FLAT else 'NOT met'}).
"""


def mib(kib: float) -> str:
    return f"{kib / 1024:,.0f}"


def section(runs: dict[str, Run], args: argparse.Namespace) -> str:
    def above(r: Run) -> str:
        floor = runs.get("floor-worker" if r.case.worker else "floor")
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
            verdict = "" if q.target is None else (f" (target at most {q.target:.2f}x: "
                                                   f"{'met' if x <= q.target else 'NOT met'})")
            ratios.append(f"- {q.what}: **{x:.2f}x**{verdict}.")
    costs = []
    for c in COSTS:
        if c.over in runs and c.under in runs:
            o, u = runs[c.over], runs[c.under]
            costs.append(f"- per {c.what}: **{(o.peak_rss_kib - u.peak_rss_kib) * 1024 / c.units(o, u):,.0f} "
                         f"bytes** ({o.case.describe()} against {u.case.describe()})")
    if costs:
        costs.insert(0, "\nWhat each part costs, from the differences of peak RSS between cases:\n")
    kind = "signed (`--keys`, default `--workers`)" if args.signed else "unsigned (`--allow-unsigned`)"
    return f"""## Memory

`python benchmarks/memory.py{' --signed' if args.signed else ''}` on {platform.machine()},
Python {platform.python_version()}, {os.cpu_count()} cores: `missionwatch replay` over generated
retention campaigns (src/missionwatch/sim.py; records {kind}, missions interleaved record by
record), each in its own child process, peak RSS from the kernel (`ru_maxrss` of that child; with
verify workers, the largest process of its tree). Receipts are action receipts; the input also
holds each mission's registration and the outcomes that follow its actions. Above the floor:
peak RSS minus that of the 200-receipt case (the interpreter, the imports). Cases without
ledger.duckdb replay with `--no-ledger`: what the monitor itself holds. Cases "in a streaming
worker's state" are no replay: a child feeds every line to `StreamCore.process` as `missionwatch run`
does with its defaults (one partition; its live ledger committed every {WORKER_COMMIT_EVERY:,} messages, as
every 5 s at the stream's rate; no out log; the records it would publish dropped), so each
mission's console history and live ledger are held beside its monitor, in a process that imported the worker's
modules (Faust, aiokafka; above their own floor, the 200-receipt case fed the same way); only
Kafka is absent.

| input | lines | input MiB | seconds | peak RSS MiB | above the floor, MiB | above the floor, bytes per receipt |
| --- | ---: | ---: | ---: | ---: | ---: | ---: |
{rows}

{chr(10).join(ratios)}
{chr(10).join(costs)}
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cases", nargs="+", choices=[c.name for c in CASES], default=[c.name for c in CASES])
    ap.add_argument("--signed", action="store_true", help="sign the inputs (replay checks them)")
    ap.add_argument("--keep", type=Path, default=None, help="generate into this directory and keep it")
    ap.add_argument("--curve-child", type=Path, default=None, help=argparse.SUPPRESS)
    ap.add_argument("--worker-child", type=Path, nargs=2, default=None, help=argparse.SUPPRESS)
    ap.add_argument("--keys", type=Path, default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.curve_child:
        return curve_child(args.curve_child)
    if args.worker_child:
        source, out = args.worker_child
        return worker_child(source, out, args.keys)
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
        points: list[dict[str, int]] = []
        for case in (c for c in CASES if c.name in args.cases):
            path = work / f"{case.name}.jsonl"
            lines = write_input(case, path, gate)
            runs[case.name] = replay(case, path, lines, work / f"out-{case.name}", keys)
            r = runs[case.name]
            print(f"{case.describe()}: {lines:,} lines, {r.seconds:.1f} s, peak RSS {mib(r.peak_rss_kib)} MiB",
                  flush=True)
            if case.name == "1x200k" and not gate:
                points = curve(path)
                print(f"growth curve: {points}", flush=True)
            if not args.keep:
                path.unlink()
    text = section(runs, args) + curve_section(points)
    write_section("Memory", text)
    print(text)


if __name__ == "__main__":
    main()
