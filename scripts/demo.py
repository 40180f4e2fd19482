"""The offline demo (`make demo`): simulate two retention campaigns, one with a
planted discount gap against customers aged 65+, one fair; replay both through
the monitor; print what it found and verify the signed output."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

OUT = Path("demo-out")
MW = [sys.executable, "-m", "missionwatch.cli"]


def run(*args: str) -> None:
    print("$ missionwatch " + " ".join(args), flush=True)
    subprocess.run([*MW, *args], check=True)


def main() -> None:
    shutil.rmtree(OUT, ignore_errors=True)
    for name, plant in (("with-gap", ["--discount-gap", "age_band=65+"]), ("fair", [])):
        sim, out = OUT / name / "sim", OUT / name / "out"
        print(f"\n=== campaign {name}: " + ("discounts to age_band=65+ at 0.4x the rate of others"
                                            if plant else "no planted behaviour") + " ===", flush=True)
        run("simulate", "--out", str(sim), "--seed", "11", *plant)
        run("replay", str(sim / "receipts.jsonl"), "--out", str(out), "--keys", str(sim / "keyring.json"),
            "--signing-key", str(sim / "monitor-1.pem"))
        run("explain", str(out / "events.jsonl"))
        run("verify", str(out / "events.jsonl"), "--keys", str(sim / "keyring.json"))
    print(f"\nEverything is in {OUT}/: events.jsonl, rejected.jsonl and ledger.duckdb per campaign.")
    query = ("SELECT age_band, count(*) FILTER (action_type = 'offer.discount') AS discounts, "
             "count(DISTINCT subject_id) AS subjects FROM actions GROUP BY 1 ORDER BY 1")
    print(f"Query the ledger, for example:\n  .venv/bin/python -c \"import duckdb; "
          f"duckdb.connect('{OUT}/with-gap/out/ledger.duckdb').sql(\\\"{query}\\\").show()\"")


if __name__ == "__main__":
    main()
