"""The throughput benchmark's smoke run: `benchmarks/throughput.py --quick` measures every
figure once at a tiny size (the full run, `make bench-throughput`, writes benchmarks/RESULTS.md)
and writes its section into a temporary RESULTS file. Only that each figure is there and
positive is checked: no timing thresholds (the machine may be busy with other work)."""

from __future__ import annotations

import json
import math
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "benchmarks" / "throughput.py"

RATES = ("raw_single", "raw_batch", "raw_batch_signed_items", "verify", "decode_canonicalize",
         "core_prepared", "core_dict", "replay_signed", "replay_unsigned", "stream_single", "stream_batch",
         "stream_batch_signed_items")
RATIOS = ("core_prepared/decode_canonicalize", "core_dict/decode_canonicalize", "replay_signed/verify",
          "replay_unsigned/decode_canonicalize", "stream_single/raw_single", "stream_batch/raw_batch",
          "stream_batch_signed_items/raw_batch_signed_items")
LATENCY = tuple(f"latency_{load}_{k}" for load in ("fixed", "80pct", "40pct")
                for k in ("offered", "achieved", "processed", "samples", "p50_ms", "p99_ms", "hop_p50_ms", "hop_p99_ms"))
RECOVERY = ("restore_1000_s", "replay_from_0_1000_s", "restore_1000/replay", "dump_in_loop_1000_s",
            "dump_fork_stall_1000_s", "kill9_start_empty_s",
            "kill9_restart_checkpoint_s", "kill9_restart_log_s", "kill9_replayed_log")
MEMORY = ("rss_floor", "rss_100x12")
HEADINGS = ("## Throughput", "### Produce-to-control latency", "### Recovery after kill -9", "### Memory: ")


def test_the_smoke_run_writes_every_figure_beside_its_ceiling(tmp_path: Path) -> None:
    results, figures = tmp_path / "RESULTS.md", tmp_path / "figures.json"
    proc = subprocess.run([sys.executable, str(SCRIPT), "--quick", "--results", str(results), "--json", str(figures)],
                          cwd=ROOT, capture_output=True, text=True, timeout=540)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    got = json.loads(figures.read_text())
    for name in RATES + RATIOS + LATENCY + RECOVERY + MEMORY:
        assert name in got, name
        assert math.isfinite(got[name]) and got[name] > 0, (name, got[name])
    assert got["kill9_replayed_checkpoint"] < got["kill9_replayed_log"]  # only the tail after the checkpoint
    assert got["latency_fixed_samples"] == got["latency_fixed_missions"]  # every planted pause arrived
    text = results.read_text()
    for heading in HEADINGS:
        assert heading in text, heading
    table = text.split("| # | measure |", 1)[1].split("\n\n", 1)[0]
    rows = [ln for ln in table.splitlines() if ln.startswith("| ") and not ln.startswith("| ---")]
    assert len(rows) == 11  # figures 1-6, every row
    assert not re.search(r"\bnan\b", text, re.IGNORECASE)
