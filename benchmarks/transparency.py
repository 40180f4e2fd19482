"""The transparency log's costs, measured in one run: proof sizes and verification times at
10^6 leaves, and what logging adds per out record (a replay with the tree and its checkpoints
against one whose spec checkpoints as rarely as it can). Writes the "Transparency log" section
of benchmarks/RESULTS.md.

    python benchmarks/transparency.py [--leaves N] [--quick]
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
from missionwatch.replay import replay_lines
from missionwatch.signing import Keyring, load_private_key
from missionwatch.sim import Campaign, write_campaign
from missionwatch.spec import SpecRegistry
from missionwatch.tlog import MerkleTree, leaf_hash, verify_consistency, verify_inclusion

SPECS = Path(__file__).resolve().parents[1] / "detectors"


def tree_figures(n: int, probes: int) -> dict[str, float]:
    """Build a tree of n leaves; time appends, inclusion and consistency proofs and their checks."""
    tree = MerkleTree()
    t0 = time.perf_counter()
    for i in range(n):
        tree.append(leaf_hash(i.to_bytes(8, "big")))
    build = time.perf_counter() - t0
    root = tree.root()
    step = max(1, n // probes)
    inc_make, inc_check, sizes = [], [], []
    for i in range(0, n, step):
        t = time.perf_counter()
        proof = tree.inclusion(i)
        inc_make.append(time.perf_counter() - t)
        t = time.perf_counter()
        verify_inclusion(i, n, tree.levels[0][i], proof, root)
        inc_check.append(time.perf_counter() - t)
        sizes.append(len(proof))
    con_make, con_check, con_sizes = [], [], []
    for old in range(1, n, step):
        t = time.perf_counter()
        proof = tree.consistency(old, n)
        con_make.append(time.perf_counter() - t)
        t = time.perf_counter()
        verify_consistency(old, n, tree.root(old), root, proof)
        con_check.append(time.perf_counter() - t)
        con_sizes.append(len(proof))
    return {"append_us": build / n * 1e6, "inclusion_hashes": max(sizes), "inclusion_bytes": 32 * max(sizes),
            "inclusion_make_us": statistics.median(inc_make) * 1e6,
            "inclusion_check_us": statistics.median(inc_check) * 1e6,
            "consistency_hashes": max(con_sizes), "consistency_make_us": statistics.median(con_make) * 1e6,
            "consistency_check_us": statistics.median(con_check) * 1e6}


def checkpoint_cost(n: int, rounds: int) -> dict[str, float]:
    """What the emitter spends per out record: a leaf appended, and per checkpoint the root, both
    proofs, the signed note and the sealed record (`Emitter.checkpoint` itself, on a log of n)."""
    from types import SimpleNamespace

    from missionwatch.core.emit import Emitter
    from missionwatch.signing import Signer

    emitter = Emitter(Signer.generate("monitor-1"))
    ms = SimpleNamespace(tree=MerkleTree(), checkpointed=0, mission_id="m-bench")
    for i in range(n):
        ms.tree.append(leaf_hash(i.to_bytes(8, "big")))
    times = []
    for _ in range(rounds):
        ms.tree.append(leaf_hash(b"next"))
        ms.checkpointed = ms.tree.size - 16
        t = time.perf_counter()
        emitter.checkpoint(ms, "2026-05-01T00:00:00Z")  # type: ignore[arg-type]
        times.append(time.perf_counter() - t)
    return {"checkpoint_ms": statistics.median(times) * 1e3}


def replay_cost(actions: int, rounds: int) -> dict[str, float]:
    """Replay one campaign with checkpoints every 1 out record and every 100,000 (the control
    records still get theirs), interleaved; per out record."""
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        c = write_campaign(Campaign(mission_id="m-bench", seed=7, actions=actions, subjects=actions // 4,
                                    discount_gap="age_band=65+", discount_gap_factor=0.4), root / "c")
        lines = c["receipts"].read_bytes().splitlines()
        times: dict[int, list[float]] = {1: [], 100_000: []}
        outs: dict[int, int] = {}
        stock = SpecRegistry.load_dir(SPECS)
        for _ in range(rounds):
            for every in times:
                # a strategy receipt every 20 actions, so out records are many
                specs = SpecRegistry({name: s.model_copy(update={
                    "cadence": s.cadence.model_copy(update={"actions": 20}),
                    "transparency": s.transparency.model_copy(update={"every": every})})
                    for name, s in stock.specs.items()})
                m = Monitor(specs, signer=load_private_key(c["monitor-1"]), keyring=Keyring.load(c["keyring"]))
                t = time.perf_counter()
                result = replay_lines(m, lines)
                times[every].append(time.perf_counter() - t)
                outs[every] = sum(1 for e in result.events if e["schema"] != "missionwatch/checkpoint@1")
        each, rare = statistics.median(times[1]), statistics.median(times[100_000])
        return {"out_records": outs[1], "seconds_each": each, "seconds_rare": rare,
                "ms_per_out_record": (each - rare) / outs[1] * 1e3, "ratio": each / rare}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--leaves", type=int, default=1_000_000)
    ap.add_argument("--actions", type=int, default=20_000)
    ap.add_argument("--quick", action="store_true", help="a smoke run: small sizes, nothing written")
    args = ap.parse_args()
    n, actions, rounds = (10_000, 2_000, 1) if args.quick else (args.leaves, args.actions, 3)
    tree = tree_figures(n, 200)
    cost = replay_cost(actions, rounds)
    each = checkpoint_cost(n, 200)
    section = f"""## Transparency log

`python benchmarks/transparency.py` on {platform.machine()}, {platform.python_version()}, {time.strftime('%Y-%m-%d')}.

Tree of {n:,} leaves (missionwatch.tlog.MerkleTree, complete subtrees kept):

| figure | value |
| --- | --- |
| append a leaf | {tree['append_us']:.2f} µs |
| inclusion proof | {tree['inclusion_hashes']:.0f} hashes, {tree['inclusion_bytes']:.0f} bytes |
| make / check an inclusion proof (median) | {tree['inclusion_make_us']:.0f} µs / {tree['inclusion_check_us']:.0f} µs |
| consistency proof (largest) | {tree['consistency_hashes']:.0f} hashes |
| make / check a consistency proof (median) | {tree['consistency_make_us']:.0f} µs / {tree['consistency_check_us']:.0f} µs |

Cost of logging. One checkpoint on a log of {n:,} records (root, both proofs, the signed note and
the sealed record: `Emitter.checkpoint`, median of 200): {each['checkpoint_ms']:.2f} ms; a leaf: the
append above. In a replay ({actions:,} signed actions, a strategy receipt every 20, {cost['out_records']:,}
out records; medians of {rounds} interleaved runs), a checkpoint after every out record took
{cost['seconds_each']:.2f} s against {cost['seconds_rare']:.2f} s with one only after control records: ratio
{cost['ratio']:.3f} ({cost['ms_per_out_record']:+.2f} ms per out record; a replay spends about
{cost['seconds_rare'] / cost['out_records'] * 1e3:.0f} ms of judging per out record, so a checkpoint's cost is lost in the
run-to-run variation; the default, a checkpoint per 16 records, costs a sixteenth of one per record).
"""
    print(section)
    if not args.quick:
        write_section("Transparency log", section)


if __name__ == "__main__":
    main()
