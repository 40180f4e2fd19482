"""benchmarks/transparency.py's smoke run: every figure computed at a small size (the figures
themselves are the script's, in RESULTS.md; no timing is judged here)."""

from __future__ import annotations

import subprocess
import sys

from tests.conftest import ROOT


def test_the_transparency_benchmark_runs_and_reports_every_figure() -> None:
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "transparency.py"), "--quick"],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    for figure in ("append a leaf", "inclusion proof | 14 hashes, 448 bytes", "make / check an inclusion proof",
                   "consistency proof (largest)", "One checkpoint on a log", "per out record"):
        assert figure in done.stdout, (figure, done.stdout)
