"""`missionwatch demo` end to end, and Ctrl-C: it stops everything it started."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import ROOT


def _start(out: Path) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "missionwatch.cli", "demo", "--out", str(out), "--rate", "500",
                             "--review-after", "1"], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, start_new_session=True)  # a session of its own, like a terminal's


def _leftovers(out: Path, text: str) -> list[str]:
    """Processes the demo started that still run: its monitor (named by its data directory)
    and its broker (named by its port)."""
    port = re.search(r"on kafka://127\.0\.0\.1:(\d+)", text)
    assert port, text
    ps = subprocess.run(["ps", "-ww", "-eo", "pid,args"], capture_output=True, text=True, check=True).stdout
    return [ln for ln in ps.splitlines() if str(out) in ln or f"127.0.0.1:{port.group(1)}" in ln]


def test_the_demo_runs_end_to_end_and_stops_cleanly(tmp_path: Path) -> None:
    out = tmp_path / "demo"
    proc = _start(out)
    text, _ = proc.communicate(timeout=300)
    assert proc.returncode == 0, text
    for said in ("ESCALATION esc-retention-gap-1 (pause, fairness:discount_rate): Discount rate for age_band=65+",
                 "PAUSE of retention-gap reached the gateway", "the agent is held",
                 "to resume, a person publishes a review", "retention-gap is RUNNING (cause rv-demo-1)",
                 "the gateway releases", '"state":"running"', "0 bad signals", "stopped: monitor and broker"):
        assert said in text, (said, text)
    ms = int(re.search(r"reached the gateway (\d+) ms", text).group(1))  # type: ignore[union-attr]
    # while the campaign still runs, not after it: the latency itself is benchmarks/throughput.py's
    # (p50/p99 at a fixed load); a bound of 1 s here failed on a machine running 4 other jobs
    assert ms < 5000
    assert _leftovers(out, text) == []
    console = re.search(r"risk console: (http://127\.0\.0\.1:\d+/) .* the token (\S+)\)", text)
    assert console, text
    import hashlib
    import json

    (entry,) = json.loads((out / "reviewers.json").read_text())["reviewers"]
    assert entry["token_sha256"] == hashlib.sha256(console.group(2).encode()).hexdigest()
    # the demo leaves the analysts' ledger, the out records and the notebooks, and says where
    held = re.search(r"holds ([\d,]+) actions, ([\d,]+) outcomes, ([\d,]+) strategy_receipts, ([\d,]+) escalations",
                     text)
    assert held, text
    assert "missionwatch sql --data" in text and (out / "README.md").read_text().count("data/ledger/") == 1
    assert (out / "notebooks" / "fairness_audit.ipynb").exists()
    from missionwatch.store.query import open_ledger

    con = open_ledger(data=out / "data")
    (actions,) = con.execute("SELECT count(*) FROM actions").fetchone()  # type: ignore[misc]
    assert actions >= int(held.group(1).replace(",", "")) > 3000
    assert con.execute("SELECT count(*) FROM escalations WHERE mission_id = 'retention-gap'").fetchone() >= (1,)
    assert con.execute("SELECT count(*) FROM chain_audit WHERE break IS NOT NULL").fetchone() == (0,)
    for f in (out / "data" / "out").glob("*.jsonl"):
        assert f.stat().st_size > 0


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_ctrl_c_stops_everything_the_demo_started(tmp_path: Path, sig: signal.Signals) -> None:
    out = tmp_path / "demo"
    proc = _start(out)
    assert proc.stdout is not None
    text = ""
    deadline = time.monotonic() + 180
    while "agents:" not in text and time.monotonic() < deadline:
        line = proc.stdout.readline()
        assert line, text
        text += line
    assert _leftovers(out, text)  # the monitor and the broker run now
    if sig == signal.SIGINT:
        os.killpg(proc.pid, sig)  # what Ctrl-C in its terminal does
    else:
        proc.send_signal(sig)  # what `kill` or a supervisor does: to the demo alone
    rest, _ = proc.communicate(timeout=60)
    text += rest
    assert proc.returncode == 130, text
    assert "interrupted: stopping what the demo started" in text and "stopped: monitor and broker" in text
    assert _leftovers(out, text) == []
