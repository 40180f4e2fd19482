from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
from hypothesis import settings

from missionwatch.monitor import Monitor, Step
from missionwatch.signing import Keyring, KeyScope, Signer
from missionwatch.spec import SpecRegistry

# CI runs the same examples every time (a red build must mean a change broke
# something); local runs keep exploring new ones.
settings.register_profile("ci", derandomize=True, database=None, print_blob=True)
if os.environ.get("CI"):
    settings.load_profile("ci")

ROOT = Path(__file__).resolve().parents[1]
SPECS = ROOT / "detectors"


@pytest.fixture(scope="session")
def registry() -> SpecRegistry:
    return SpecRegistry.load_dir(SPECS)


@pytest.fixture(scope="session")
def keys() -> dict[str, Signer]:
    return {"gate": Signer.generate("gate-1"), "reviewer": Signer.generate("reviewer-1"),
            "monitor": Signer.generate("monitor-1"), "stranger": Signer.generate("gate-x"),
            "scoped": Signer.generate("reviewer-scoped")}


@pytest.fixture(scope="session")
def keyring(keys: dict[str, Signer]) -> Keyring:
    ring = Keyring()
    ring.add("gate-1", keys["gate"].public_key, "gate")
    ring.add("reviewer-1", keys["reviewer"].public_key, "reviewer")
    ring.add("monitor-1", keys["monitor"].public_key, "monitor")
    ring.add("reviewer-scoped", keys["scoped"].public_key, "reviewer",
             KeyScope(missions=("scoped-*",), decisions=("acknowledge", "resume"), reviewer="user:kim"))
    return ring


@pytest.fixture
def monitor(registry: SpecRegistry, keys: dict[str, Signer], keyring: Keyring) -> Monitor:
    return Monitor(registry, signer=keys["monitor"], keyring=keyring)


def action(i: int, *, mission: str = "m-1", subject: str | None = None, action_type: str = "email.send",
           decision: str = "allowed", cohort: dict[str, str] | None = None, t: int | None = None,
           **attributes: Any) -> dict[str, Any]:
    return {
        "schema": "missionwatch/action@1", "receipt_id": f"r-{mission}-{i}", "mission_id": mission,
        "agent_id": "agent:v1", "action_type": action_type, "decision": decision,
        "subject": {"id": subject or f"cust-{i % 50}",
                    "cohort": cohort if cohort is not None else {"segment": "smb", "age_band": "18-34"}},
        "attributes": attributes, "occurred_at": stamp(t if t is not None else i * 60),
    }


def stamp(seconds: int) -> str:
    from missionwatch.records import format_time

    return format_time(1_777_593_600 + seconds)  # 2026-05-01T00:00:00Z


def line(record: dict[str, Any]) -> str:
    return json.dumps(record, separators=(",", ":"))


def registration(mission: str = "m-1", spec: str = "retention") -> dict[str, Any]:
    return {"schema": "missionwatch/mission@1", "mission_id": mission, "spec": spec,
            "objective": "renewals", "started_at": stamp(0)}


def review(decision: str, escalation: str | None = None, rid: str = "rv-1", t: int = 10_000) -> dict[str, Any]:
    """An unsigned review of mission m-1 by user:lee, `t` seconds after the epoch of `stamp`."""
    rec = {"schema": "missionwatch/review@1", "review_id": rid, "mission_id": "m-1", "reviewer": "user:lee",
           "decision": decision, "occurred_at": stamp(t)}
    if escalation:
        rec["escalation_id"] = escalation
    return rec


def feed(monitor: Monitor, signer: Signer, record: dict[str, Any]) -> Step:
    """Sign `record` and feed it to `monitor` as one line."""
    return monitor.feed(line(signer.sign(record)))


def paused_awaiting_a_second_reviewer(monitor: Monitor, gate: Signer, mission: str, cause: str,
                                       first: tuple[str, str] | None = None) -> None:
    """A mission whose spec asks two reviewers to resume it, paused by escalation `cause`, that
    `first` (reviewer, key) approved resuming (tests/core/test_reviews.py reaches this state
    through records)."""
    from missionwatch.core.mission import EscalationEntry

    feed(monitor, gate, action(1, mission=mission))
    ms = monitor.missions[mission]
    ms.spec = ms.spec.model_copy(update={"spec": ms.spec.spec.model_copy(update={"resume_reviewers": 2})})
    ms.escalations[cause] = EscalationEntry("pause", True, 0.0)
    ms.state, ms.cause, ms.cause_t = "paused", cause, 0.0
    ms.resume_approvals[cause] = [first] if first else []
