"""What the running service's live ledger costs (store/live.py), measured side by side in one
run: a StreamCore fed one signed campaign message by message, without a ledger and with one
committed every 500 messages (the writes on the same thread here; the service writes them in a
thread), and the event loop's share (taking the jobs). Writes the "Live ledger" section of
benchmarks/RESULTS.md.

    python benchmarks/live_ledger.py [--actions N] [--rounds R]
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # as a script: the repository root

from benchmarks.results import write_section

from missionwatch.monitor import Monitor
from missionwatch.signing import Keyring, load_private_key
from missionwatch.sim import Campaign, write_campaign
from missionwatch.spec import SpecRegistry
from missionwatch.store.query import open_ledger
from missionwatch.stream.core import StreamCore

SPECS = Path(__file__).resolve().parents[1] / "detectors"


def run(lines: list[bytes], make: object, ledger: Path | None) -> tuple[float, float]:
    core = StreamCore(make, ledger=ledger)  # type: ignore[arg-type]
    core.assign([0])
    core.activate(0)
    t, loop = time.perf_counter(), 0.0
    for i, ln in enumerate(lines):
        core.process(0, i, ln)
        if ledger is not None and i % 500 == 499:
            t1 = time.perf_counter()
            jobs = core.ledgers.jobs()
            loop += time.perf_counter() - t1
            for led in jobs:
                led.write()
    for led in core.ledgers.jobs():
        led.write()
    return time.perf_counter() - t, loop


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--actions", type=int, default=6000)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        c = write_campaign(Campaign(mission_id="m", seed=7, actions=args.actions, subjects=args.actions // 4,
                                    discount_gap="age_band=65+", discount_gap_factor=0.4), root / "c")
        lines = [ln for ln in c["receipts"].read_bytes().splitlines() if ln.strip()]
        reg, ring, signer = SpecRegistry.load_dir(SPECS), Keyring.load(c["keyring"]), load_private_key(c["monitor-1"])

        def make() -> Monitor:
            return Monitor(reg, signer=signer, keyring=ring)

        off, on, loop = [], [], []
        for k in range(args.rounds):
            off.append(run(lines, make, None)[0])
            total, hot = run(lines, make, root / f"d{k}" / "ledger")
            on.append(total)
            loop.append(hot)
        t = time.perf_counter()
        con = open_ledger(data=root / "d0")
        n = con.execute("SELECT count(*) FROM actions").fetchone()
        opened = time.perf_counter() - t
    m_off, m_on, m_loop = statistics.median(off), statistics.median(on), statistics.median(loop)
    section = f"""## Live ledger

`python benchmarks/live_ledger.py` on {platform.machine()}, Python {platform.python_version()},
{time.strftime('%Y-%m-%d')}: {len(lines):,} signed records fed to a StreamCore, medians of {args.rounds}
interleaved runs.

| measure | seconds | ratio to no ledger |
| --- | ---: | ---: |
| no ledger | {m_off:.2f} | 1 |
| ledger committed every 500 messages, writes on the same thread | {m_on:.2f} | {m_on / m_off:.3f} |
| of which on the event loop (taking the commits' jobs) | {m_loop:.2f} | {m_loop / m_off:.3f} |

Opening the ledger (`open_ledger(data=...)`) and counting its {n[0] if n else 0:,} actions: {opened:.2f} s.
"""
    print(section)
    write_section("Live ledger", section)


if __name__ == "__main__":
    main()
