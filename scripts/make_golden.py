"""Regenerate detectors/examples/retention/: a signed example stream for the stock
retention spec (a discount gap against age_band=65+, then a reviewer's acknowledgement)
and the exact out records it must produce. Keys derive from a fixed seed: they are
example keys, never to be used for anything real. Review the diff before committing."""

from __future__ import annotations

import json
from pathlib import Path

from missionwatch.monitor import Monitor
from missionwatch.replay import replay_lines
from missionwatch.signing import Keyring, load_private_key
from missionwatch.sim import Campaign, write_campaign
from missionwatch.spec import SpecRegistry

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "detectors" / "examples" / "retention"


def main() -> None:
    c = Campaign(mission_id="retention-example", seed=42, actions=6000, subjects=1500,
                 discount_gap="age_band=65+", discount_gap_factor=0.15)
    paths = write_campaign(c, OUT, seed_keys=True)
    (OUT / "gate-1.pem").unlink()  # the stream is signed; the example needs no gate key
    stream = OUT / "stream.jsonl"
    paths["receipts"].rename(stream)
    registry = SpecRegistry.load_dir(ROOT / "detectors")
    keyring = Keyring.load(paths["keyring"])
    monitor_key = load_private_key(OUT / "monitor-1.pem")
    first = replay_lines(Monitor(registry, signer=monitor_key, keyring=keyring), stream.read_text().splitlines())
    esc = next(e for e in first.events if e["schema"] == "missionwatch/escalation@1")
    reviewer = load_private_key(OUT / "reviewer-1.pem")
    review = reviewer.sign({"schema": "missionwatch/review@1", "review_id": "rv-example-1",
                            "mission_id": c.mission_id, "escalation_id": esc["escalation_id"],
                            "reviewer": "user:lee.risk", "decision": "acknowledge",
                            "note": "gap confirmed; discount policy for 65+ under review",
                            "occurred_at": esc["issued_at"]})
    with stream.open("a", encoding="utf-8") as f:
        f.write(json.dumps(review, separators=(",", ":")) + "\n")
    (OUT / "reviewer-1.pem").unlink()
    result = replay_lines(Monitor(registry, signer=monitor_key, keyring=keyring), stream.read_text().splitlines())
    with (OUT / "expected-events.jsonl").open("w", encoding="utf-8") as f:
        for e in result.events:
            f.write(json.dumps(e, ensure_ascii=False, separators=(",", ":")) + "\n")
    print(f"wrote {stream} ({result.lines} lines) and {len(result.events)} expected out records")


if __name__ == "__main__":
    main()
