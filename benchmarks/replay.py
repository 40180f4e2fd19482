"""Replay throughput beside the machine's bare Ed25519 verify rate, measured side
by side in one run (these machines are noisy: the ratio is the figure that counts).

Target (issue: Core): replay of signed records at least half the bare verify rate.
Writes the "Replay" section of benchmarks/RESULTS.md.

    python benchmarks/replay.py [--actions N] [--repeats R]
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # as a script: the repository root

from benchmarks.results import write_section

from missionwatch.canonical import canonical_bytes, strip_envelope
from missionwatch.intake import default_workers
from missionwatch.monitor import Monitor
from missionwatch.replay import replay_lines
from missionwatch.signing import Keyring, Signer
from missionwatch.sim import Campaign, generate
from missionwatch.spec import SpecRegistry

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--actions", type=int, default=20_000)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--workers", type=int, default=None,
                    help="signature-check processes for the signed replay (default: as `missionwatch replay`)")
    args = ap.parse_args()
    workers = default_workers() if args.workers is None else args.workers
    registry = SpecRegistry.load_dir(ROOT / "detectors")
    gate, monitor_key = Signer.generate("gate-1"), Signer.generate("monitor-1")
    ring = Keyring()
    ring.add("gate-1", gate.public_key, "gate")
    records = list(generate(Campaign(actions=args.actions, subjects=args.actions // 4,
                                     discount_gap="age_band=65+")))
    signed = [json.dumps(gate.sign(r), separators=(",", ":")) for r in records]
    unsigned = [json.dumps(r, separators=(",", ":")) for r in records]
    pairs = [(base64.b64decode(json.loads(s)["signature"]["value"]), canonical_bytes(strip_envelope(json.loads(s))))
             for s in signed]
    pub = gate.public_key

    def bare() -> float:
        t = time.perf_counter()
        for sig, payload in pairs:
            pub.verify(sig, payload)
        return len(pairs) / (time.perf_counter() - t)

    def replay(lines: list[str], workers: int = 0, **kw: object) -> float:
        m = Monitor(registry, signer=monitor_key, **kw)  # type: ignore[arg-type]
        t = time.perf_counter()
        result = replay_lines(m, lines, workers=workers)
        rate = len(lines) / (time.perf_counter() - t)
        assert not result.rejected
        return rate

    rows = []
    for i in range(args.repeats):  # interleaved, so drift hits every measurement alike
        rows.append((bare(), replay(signed, workers, keyring=ring), replay(signed, 0, keyring=ring),
                     replay(unsigned, allow_unsigned=True)))
        print(f"run {i + 1}: bare verify {rows[-1][0]:.0f}/s, signed replay {rows[-1][1]:.0f}/s "
              f"({workers} verify workers), {rows[-1][2]:.0f}/s (in-process), "
              f"unsigned replay {rows[-1][3]:.0f}/s", flush=True)
    v, s, s0, u = (statistics.median(c) for c in zip(*rows, strict=True))
    ratios = [r[1] / r[0] for r in rows]
    section = f"""## Replay

`python benchmarks/replay.py --actions {args.actions} --repeats {args.repeats}` on {platform.machine()},
Python {platform.python_version()}; {len(records)} records of a simulated retention campaign
(discount gap planted), medians of {args.repeats} interleaved runs, {os.cpu_count()} cores.

| measure | records/s |
| --- | ---: |
| bare Ed25519 verify (same machine, same run) | {v:,.0f} |
| replay, signed records (`--workers {workers}`, the default here) | {s:,.0f} |
| replay, signed records, checked in-process (`--workers 0`) | {s0:,.0f} |
| replay, unsigned records (`--allow-unsigned`) | {u:,.0f} |

Signed replay / bare verify: **{statistics.median(ratios):.2f}** (per run: {', '.join(f'{r:.2f}' for r in ratios)});
target at least 0.50. The core runs in one process; {workers} more check signatures beside it, so
the figure uses {workers + 1} cores against the bare rate's one. In-process (`--workers 0`, one core):
{s0 / v:.2f}. Unsigned replay / signed replay: {u / s:.1f}x.
"""
    write_section("Replay", section)
    print(section)


if __name__ == "__main__":
    main()
