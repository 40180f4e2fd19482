"""A synthetic retention campaign with planted behaviour, for the demo, the tests
and the benchmarks. Seeded: the same settings give the same records.

The campaign contacts subjects drawn from four cohort attributes and takes the
actions of the stock `retention` spec; outcomes (complaints, churn, renewals)
follow their actions by hours to days. Behaviours that can be planted:

- `discount_gap`: one cohort gets discounts at `discount_gap_factor` times the rate
  of everyone else, from the start;
- `new_template`: from `change_at` on, a pushier template takes a share of emails;
- `followup_rise`: from `change_at` on, follow-ups to one cohort multiply;
- `complaint_spike`: from `change_at` on, complaints multiply.
"""

from __future__ import annotations

import heapq
import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from .records import format_time
from .signing import Keyring, Signer, write_private_key

__all__ = ["Campaign", "generate", "write_campaign"]

SEGMENTS = (("smb", 0.6), ("mid", 0.3), ("enterprise", 0.1))
TENURE = (("m0-3", 0.3), ("m4-12", 0.4), ("m13+", 0.3))
AGE = (("18-34", 0.3), ("35-49", 0.3), ("50-64", 0.25), ("65+", 0.15))
REGION = (("north", 0.25), ("south", 0.25), ("east", 0.25), ("west", 0.25))
ACTIONS = (("email.send", 0.5), ("offer.discount", 0.15), ("followup.schedule", 0.25),
           ("cancellation.handle", 0.10))
EMAIL_TEMPLATES = ("renewal-v1", "renewal-v2", "checkin-v1")
DECISIONS = (("allowed", 0.95), ("denied", 0.02), ("escalated", 0.02), ("overridden", 0.01))


@dataclass(frozen=True)
class Campaign:
    """Settings of a simulated campaign; every field has a default that runs."""

    mission_id: str = "retention-campaign-sim"
    seed: int = 7
    actions: int = 20_000
    subjects: int = 5_000
    start: str = "2026-05-01T00:00:00Z"
    seconds_between_actions: float = 30.0
    change_at: float = 0.5
    """Fraction of the campaign after which time-varying plants begin."""
    discount_gap: str | None = None
    """A cohort such as 'age_band=65+' that gets fewer discounts."""
    discount_gap_factor: float = 0.4
    new_template: str | None = None
    """A template name (e.g. 'urgent-last-chance') that appears at change_at."""
    new_template_share: float = 0.3
    followup_rise: str | None = None
    """A cohort such as 'age_band=65+' whose follow-ups multiply at change_at ('*': every one;
    'segment=smb,tenure_band=m4-12': an intersection)."""
    followup_rise_factor: float = 3.0
    complaint_spike: float | None = None
    """Factor by which complaints multiply at change_at."""
    complaint_rate: float = 0.01
    register: bool = True


def _pick(rng: np.random.Generator, table: tuple[tuple[str, float], ...], size: int) -> list[str]:
    names = [n for n, _ in table]
    p = np.array([w for _, w in table])
    return [names[i] for i in rng.choice(len(names), size=size, p=p / p.sum())]


def _cohort_match(cohort: dict[str, str], spec: str | None) -> bool:
    """Whether `cohort` is in `spec`: 'key=value', several joined by ',' (all must hold: an
    intersection), or '*' (every cohort)."""
    if not spec:
        return False
    if spec == "*":  # every cohort: a mission-wide plant
        return True
    return all(cohort.get(key) == value for key, _, value in (part.partition("=") for part in spec.split(",")))


def generate(c: Campaign) -> Iterator[dict[str, Any]]:
    """Yield the campaign's unsigned records in arrival order (registration first)."""
    rng = np.random.default_rng(c.seed)
    t0 = datetime.fromisoformat(c.start.replace("Z", "+00:00")).astimezone(UTC).timestamp()
    if c.register:
        yield _registration(c, t0)
    cohorts = list(zip(_pick(rng, SEGMENTS, c.subjects), _pick(rng, TENURE, c.subjects),
                       _pick(rng, AGE, c.subjects), _pick(rng, REGION, c.subjects), strict=True))
    subject_ids = rng.integers(0, c.subjects, size=c.actions)
    u = rng.random((c.actions, 8))
    change = int(c.actions * c.change_at)
    pending: list[tuple[float, int, dict[str, Any]]] = []  # (time, order, outcome)
    order = 0
    for i in range(c.actions):
        t = t0 + i * c.seconds_between_actions
        while pending and pending[0][0] <= t:
            yield heapq.heappop(pending)[2]
        s = int(subject_ids[i])
        seg, ten, age, reg = cohorts[s]
        cohort = {"segment": seg, "tenure_band": ten, "age_band": age, "region": reg}
        action = _action(c, i, s, cohort, u[i], i >= change, t)
        yield action
        for delay, outcome in _outcomes(c, i, s, str(action["action_type"]), u[i], i >= change, t):
            order += 1
            heapq.heappush(pending, (t + delay, order, outcome))
    while pending:
        yield heapq.heappop(pending)[2]


def _registration(c: Campaign, t0: float) -> dict[str, Any]:
    return {
        "schema": "missionwatch/mission@1", "mission_id": c.mission_id, "spec": "retention",
        "objective": "increase renewals", "proxy_metric": "renewal conversion",
        "constraints": ["no cancellation obstruction", "no vulnerable-segment pressure",
                        "no discriminatory discounting"],
        "owner": "risk:retention-team", "human_delegate": "user:dana.cro",
        "started_at": format_time(t0),
    }


def _action(c: Campaign, i: int, s: int, cohort: dict[str, str], u: np.ndarray, changed: bool,
            t: float) -> dict[str, Any]:
    """The i-th action record, to subject `s`; `u` is its row of uniform draws, `changed`
    whether the time-varying plants have begun."""
    p = np.array([w for _, w in ACTIONS])
    if _cohort_match(cohort, c.discount_gap):
        p[1] *= c.discount_gap_factor
    if changed and _cohort_match(cohort, c.followup_rise):
        p[2] *= c.followup_rise_factor
    p /= p.sum()
    action = ACTIONS[int(np.searchsorted(np.cumsum(p), u[0] * 0.999999))][0]
    return {
        "schema": "missionwatch/action@1", "receipt_id": f"r-{c.seed}-{i:07d}",
        "mission_id": c.mission_id, "agent_id": "retention-agent:v4", "action_type": action,
        "decision": _decision(float(u[3])), "subject": {"id": f"cust-{s:05d}", "cohort": cohort},
        "attributes": _attributes(c, action, u, changed), "policy_version": "retention-policy:v7",
        "occurred_at": format_time(t),
    }


def _attributes(c: Campaign, action: str, u: np.ndarray, changed: bool) -> dict[str, Any]:
    attrs: dict[str, Any] = {}
    if action in ("email.send", "followup.schedule"):
        tpl = EMAIL_TEMPLATES[int(u[1] * len(EMAIL_TEMPLATES))]
        if c.new_template and changed and u[2] < c.new_template_share:
            tpl = c.new_template
        attrs["template"] = tpl
    elif action == "offer.discount":
        attrs["template"] = "offer-v1"
        attrs["discount_pct"] = float(5 * (1 + int(u[1] * 4)))
    else:
        attrs["delay_hours"] = round(float(-24.0 * np.log(1 - u[1])), 2)
    return attrs


def _decision(draw: float) -> str:
    acc = 0.0
    for name, w in DECISIONS:
        acc += w
        if draw < acc:
            return name
    return DECISIONS[-1][0]


def _outcomes(c: Campaign, i: int, s: int, action: str, u: np.ndarray, changed: bool,
              t: float) -> list[tuple[float, dict[str, Any]]]:
    """The outcomes that follow the i-th action, each with its delay in seconds."""
    rate = c.complaint_rate * (c.complaint_spike if c.complaint_spike and changed else 1.0)
    kinds = []
    if u[4] < rate:
        kinds.append(("complaint", 2 * 3600 + u[5] * 70 * 3600))
    if action == "cancellation.handle" and u[6] < 0.5:
        kinds.append(("churn", 24 * 3600 + u[5] * 48 * 3600))
    if action == "offer.discount" and u[6] < 0.3:
        kinds.append(("renewal", 6 * 3600 + u[7] * 96 * 3600))
    return [(delay, {
        "schema": "missionwatch/outcome@1", "outcome_id": f"o-{c.seed}-{i:07d}-{kind}",
        "mission_id": c.mission_id, "subject": {"id": f"cust-{s:05d}"},
        "outcome_type": kind, "value": 1, "occurred_at": format_time(t + delay),
        "follows": f"r-{c.seed}-{i:07d}",
    }) for kind, delay in kinds]


def write_campaign(c: Campaign, out: Path, *, seed_keys: bool = False) -> dict[str, Path]:
    """Write the signed campaign and its keys into `out`; return the paths written.

    Files: receipts.jsonl (signed by gate-1), keyring.json (gate-1, reviewer-1,
    monitor-1), gate-1.pem, reviewer-1.pem, monitor-1.pem. With `seed_keys`,
    keys derive from the campaign seed, so reruns give byte-identical files.
    """
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    out.mkdir(parents=True, exist_ok=True)

    def key(name: str) -> Signer:
        if seed_keys:
            import hashlib

            raw = hashlib.sha256(f"missionwatch-sim:{c.seed}:{name}".encode()).digest()
            return Signer(Ed25519PrivateKey.from_private_bytes(raw), name)
        return Signer.generate(name)

    gate, reviewer, monitor = key("gate-1"), key("reviewer-1"), key("monitor-1")
    ring = Keyring()
    ring.add(gate.key_id, gate.public_key, "gate")
    ring.add(reviewer.key_id, reviewer.public_key, "reviewer")
    ring.add(monitor.key_id, monitor.public_key, "monitor")
    paths = {"receipts": out / "receipts.jsonl", "keyring": out / "keyring.json"}
    for s in (gate, reviewer, monitor):
        paths[s.key_id] = out / f"{s.key_id}.pem"
        write_private_key(s, paths[s.key_id])
    paths["keyring"].write_text(json.dumps(ring.to_json(), indent=2) + "\n", encoding="utf-8")
    with paths["receipts"].open("w", encoding="utf-8") as f:
        for rec in generate(c):
            f.write(json.dumps(gate.sign(rec), separators=(",", ":"), ensure_ascii=False) + "\n")
    paths["planted"] = out / "planted.json"
    paths["planted"].write_text(json.dumps(planted(c), indent=2) + "\n", encoding="utf-8")
    return paths


def planted(c: Campaign) -> dict[str, Any]:
    """The campaign's ground truth: each planted change, from which action (0-based) and when."""
    t0 = datetime.fromisoformat(c.start.replace("Z", "+00:00")).astimezone(UTC).timestamp()
    change = int(c.actions * c.change_at)

    def at(i: int) -> dict[str, Any]:
        return {"from_action": i, "from": format_time(t0 + i * c.seconds_between_actions)}

    changes: list[dict[str, Any]] = []
    if c.discount_gap:
        changes.append({"kind": "discount_gap", "cohort": c.discount_gap, "factor": c.discount_gap_factor, **at(0)})
    if c.new_template:
        changes.append({"kind": "new_template", "template": c.new_template, "share": c.new_template_share,
                        **at(change)})
    if c.followup_rise:
        changes.append({"kind": "followup_rise", "cohort": c.followup_rise, "factor": c.followup_rise_factor,
                        **at(change)})
    if c.complaint_spike:
        changes.append({"kind": "complaint_spike", "factor": c.complaint_spike, **at(change)})
    return {"mission_id": c.mission_id, "actions": c.actions, "changes": changes}
