"""Streaming throughput beside replay, measured side by side in one run (these machines
are noisy: the ratio is the figure that counts).

One `missionwatch run` worker on the embedded broker (4 partitions, 4 missions) is fed
the same signed records twice: once one record per Kafka message, once packed in signed
batch envelopes of 500 (as `missionwatch.gate.Gate` sends them). The time runs from the
first record produced to the last one processed (the worker's /metrics). Beside it: an
in-process replay of the same records (`--workers 0`: one core, like the worker's core).
Writes the "Streaming" section of benchmarks/RESULTS.md.

    python benchmarks/stream.py [--actions N]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # as a script: the repository root

from benchmarks.results import write_section

from missionwatch.monitor import Monitor
from missionwatch.replay import replay_lines
from missionwatch.signing import Keyring, Signer, write_private_key
from missionwatch.sim import Campaign, generate
from missionwatch.spec import SpecRegistry
from missionwatch.stream.broker import EmbeddedBroker, create_topics, free_port, stop_process_group
from missionwatch.stream.http import parse_metrics

ROOT = Path(__file__).resolve().parents[1]
MISSIONS = ("m-0", "m-1", "m-5", "m-gap")  # one per partition of four


def _metrics(port: int) -> dict[str, float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
        return parse_metrics(r.read().decode())


def _produce(bootstrap: str, messages: list[tuple[bytes, bytes]]) -> None:
    from aiokafka import AIOKafkaProducer

    async def go() -> None:
        p = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5, max_batch_size=1 << 20)
        await p.start()
        try:
            for key, value in messages:
                await p.send("missionwatch.in", value=value, key=key)
            await p.flush()
        finally:
            await p.stop()

    asyncio.run(go())


def _timed(bootstrap: str, port: int, messages: list[tuple[bytes, bytes]], records: int) -> float:
    """Records/s from the first produced to the last processed."""
    base = _metrics(port)["missionwatch_records_in_total"]
    t = time.perf_counter()
    _produce(bootstrap, messages)
    while _metrics(port)["missionwatch_records_in_total"] < base + records:
        time.sleep(0.05)
    return records / (time.perf_counter() - t)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--actions", type=int, default=5_000, help="actions per mission (4 missions)")
    args = ap.parse_args()

    gate, monitor_key = Signer.generate("gate-1"), Signer.generate("monitor-1")
    ring = Keyring()
    ring.add("gate-1", gate.public_key, "gate")
    per: dict[str, list[dict[str, Any]]] = {}
    for i, m in enumerate(MISSIONS):
        per[m] = [gate.sign(r) for r in generate(Campaign(mission_id=m, seed=i, actions=args.actions,
                                                          subjects=args.actions // 4))]
    order = [r for group in zip(*per.values(), strict=False) for r in group]
    total = len(order)
    single = [(r["mission_id"].encode(), json.dumps(r, separators=(",", ":")).encode()) for r in order]

    def batched(tag: str) -> list[tuple[bytes, bytes]]:
        out = []
        for m, recs in per.items():
            for k in range(0, len(recs), 500):
                env = gate.sign({"schema": "missionwatch/batch@1", "batch_id": f"{tag}-{m}-{k}",
                                 "items": recs[k:k + 500]})
                out.append((m.encode(), json.dumps(env, separators=(",", ":")).encode()))
        return out

    # replay, in-process, of the same records (the worker runs the core in one process)
    t = time.perf_counter()
    result = replay_lines(Monitor(SpecRegistry.load_dir(ROOT / "detectors"), signer=monitor_key, keyring=ring),
                          [v for _, v in single])
    replay_rate = total / (time.perf_counter() - t)
    assert not result.rejected

    with tempfile.TemporaryDirectory() as tmp, EmbeddedBroker(port=free_port()) as broker:
        create_topics(broker.bootstrap, 4)
        (Path(tmp) / "keyring.json").write_text(json.dumps(ring.to_json()))
        write_private_key(monitor_key, Path(tmp) / "monitor.pem")
        web = free_port()
        proc = subprocess.Popen([sys.executable, "-m", "missionwatch.cli", "run", "--broker", broker.url,
                                 "--keys", str(Path(tmp) / "keyring.json"), "--signing-key",
                                 str(Path(tmp) / "monitor.pem"), "--data", tmp, "--web-port", str(web),
                                 "--specs", str(ROOT / "detectors")],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        try:
            deadline = time.monotonic() + 180
            while time.monotonic() < deadline:
                try:
                    if _metrics(web).get("missionwatch_partitions") == 4:
                        break
                except OSError:
                    pass
                time.sleep(0.25)
            else:
                raise SystemExit("the worker did not take its partitions in 180 s")
            # the same records again would be duplicates: the second pass uses other missions' copies
            single_rate = _timed(broker.bootstrap, web, single, total)
            print(f"stream, one record per message: {single_rate:,.0f} records/s", flush=True)
            for recs in per.values():
                for r in recs:
                    r["mission_id"] += "-b"
            per_b = {m + "-b": [gate.sign(r) for r in recs] for m, recs in per.items()}
            per.clear()
            per.update(per_b)
            batch_rate = _timed(broker.bootstrap, web, batched("b"), total)
            print(f"stream, batches of 500: {batch_rate:,.0f} records/s; replay {replay_rate:,.0f}/s", flush=True)
        finally:
            stop_process_group(proc, grace=30)

    section = f"""## Streaming

`python benchmarks/stream.py --actions {args.actions}` on {platform.machine()}, Python
{platform.python_version()}, {os.cpu_count()} cores: {total:,} signed records of 4 simulated missions
(one per partition), one `missionwatch run` worker on the embedded broker, timed from the first
record produced to the last processed; beside it, in the same run, an in-process replay
(`--workers 0`) of the same records.

| measure | records/s | / replay |
| --- | ---: | ---: |
| replay, in-process | {replay_rate:,.0f} | 1.00 |
| stream, one record per message | {single_rate:,.0f} | {single_rate / replay_rate:.2f} |
| stream, signed batches of 500 (the gate's envelopes) | {batch_rate:,.0f} | {batch_rate / replay_rate:.2f} |

The worker runs the core in one process and checks signatures there; the producer, the
broker and the worker share the machine's cores.
"""
    write_section("Streaming", section)
    print(section)


if __name__ == "__main__":
    main()
