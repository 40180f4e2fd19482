"""`missionwatch demo`: the broker, the monitor, and a simulated agent campaign behind a
gateway that obeys pause signals, on one machine with no set-up.

Two retention missions run side by side: one fair, one whose agent gives customers aged
65+ discounts at 0.4x the rate of others. The demo's gateway (`missionwatch.gate.Gate`)
publishes their receipts to `missionwatch.in`; the monitor (`missionwatch run`, a
subprocess) judges them; a pause reaches the gateway, which holds that mission's agent;
a reviewer's signed review resumes it. Everything the demo starts stops with it, Ctrl-C
included.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import sys
import time
import urllib.request
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..gate import ControlState, Gate
from ..records import SCHEMA_ESCALATION, SCHEMA_STRATEGY
from ..signing import Keyring, load_private_key
from ..sim import Campaign, write_campaign
from .broker import EmbeddedBroker, create_topics, free_port, stop_process_group

__all__ = ["DemoOptions", "run_demo", "write_demo_specs"]

_DISCOUNT_RULE = 'metric = "discount_rate"\nharm = "lower"\n'
GAP, FAIR = "retention-gap", "retention-fair"


def write_demo_specs(stock: Path, out: Path) -> Path:
    """Copy the stock specs to `out`, with the retention spec's discount fairness rule raised
    from severity "review" to "pause", so a discount gap pauses the mission."""
    out.mkdir(parents=True, exist_ok=True)
    for p in stock.glob("*.toml"):
        shutil.copyfile(p, out / p.name)
    retention = out / "retention.toml"
    text = retention.read_text(encoding="utf-8")
    if text.count(_DISCOUNT_RULE) != 1:
        raise ValueError(f"{stock / 'retention.toml'}: no single discount_rate fairness rule to make pausing")
    retention.write_text(text.replace(_DISCOUNT_RULE, _DISCOUNT_RULE + 'severity = "pause"\n'), encoding="utf-8")
    return out


@dataclass
class DemoOptions:
    stock_specs: Path
    out: Path = Path("demo-out/stream")
    port: int | None = None
    """Broker port; None: a free one."""
    web_port: int | None = None
    rate: float = 400.0
    """Receipts per second the simulated agents produce (both missions together)."""
    review_after: float = 3.0
    """Seconds between the pause and the reviewer's resume."""
    hold: bool = False
    """Keep everything running after the campaign, until Ctrl-C."""


@dataclass
class _Seen:
    counts: Counter[str] = field(default_factory=Counter)
    escalations: dict[str, dict[str, Any]] = field(default_factory=dict)
    controls: list[ControlState] = field(default_factory=list)


class _Worker:
    """`missionwatch run` as a subprocess in its own process group."""

    def __init__(self, args: list[str], log: Path) -> None:
        self.log = log.open("wb")
        self.proc = subprocess.Popen([sys.executable, "-m", "missionwatch.cli", "run", *args],
                                     stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True)

    def stop(self) -> None:
        stop_process_group(self.proc, grace=30)
        self.log.close()


def _get(port: int, path: str) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=2) as r:
        return str(r.read().decode())


def _wait_ready(worker: _Worker, web_port: int, log: Path, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if worker.proc.poll() is not None:
            raise RuntimeError(f"the monitor exited with code {worker.proc.returncode}; see {log}")
        try:
            if len(json.loads(_get(web_port, "/healthz"))["partitions"]) == 4:
                return
        except (OSError, ValueError, KeyError):
            pass
        time.sleep(0.25)
    raise RuntimeError(f"the monitor did not take its partitions within {timeout:.0f} s; see {log}")


def run_demo(opts: DemoOptions, say: Callable[[str], None] = print) -> int:
    out = opts.out
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    specs = write_demo_specs(opts.stock_specs, out / "specs")
    paths = {}
    for mission, gap in ((GAP, "age_band=65+"), (FAIR, None)):
        paths[mission] = write_campaign(Campaign(mission_id=mission, seed=7, actions=3000, subjects=800,
                                                 discount_gap=gap, discount_gap_factor=0.4),
                                        out / mission, seed_keys=True)  # one set of keys for both
    keys = paths[GAP]
    web_port = opts.web_port or free_port()
    say("missionwatch demo: two retention missions behind one gateway")
    say(f"  {GAP}: its agent offers customers aged 65+ discounts at 0.4x the rate of others")
    say(f"  {FAIR}: no planted behaviour")
    say(f"  spec: the stock retention spec, with the discount fairness rule set to pause ({specs})")

    broker = EmbeddedBroker(port=opts.port or free_port())
    worker: _Worker | None = None
    try:
        broker.start()
        create_topics(broker.bootstrap, 4)
        say(f"broker: embedded Tansu on {broker.url} (in memory)")
        log = out / "monitor.log"
        worker = _Worker(["--broker", broker.url, "--specs", str(specs), "--keys", str(keys["keyring"]),
                          "--signing-key", str(keys["monitor-1"]), "--data", str(out / "data"),
                          "--web-port", str(web_port), "--loglevel", "info"], log)
        say(f"monitor: `missionwatch run` (pid {worker.proc.pid}), http://127.0.0.1:{web_port}/metrics; "
            "joining its consumer group...")
        _wait_ready(worker, web_port, log)
        say("monitor: serving partitions 0-3")
        asyncio.run(_campaign(opts, broker.bootstrap, paths, web_port, say))
        say(f"\nstatus for gateways that poll: {_get(web_port, f'/api/missions/{GAP}/status')}")
        for line in _get(web_port, "/metrics").splitlines():
            if line.startswith(("missionwatch_messages_in_total", "missionwatch_records_in_total",
                                "missionwatch_escalations_total", "missionwatch_controls_total",
                                "missionwatch_strategy_receipts_total")):
                say(f"  {line}")
        if opts.hold:
            say("\neverything keeps running; Ctrl-C stops it")
            while worker.proc.poll() is None:
                time.sleep(0.5)
        say(f"\nfiles: {out}/ (campaigns, keys, specs, monitor.log)")
        return 0
    except KeyboardInterrupt:
        say("\ninterrupted: stopping what the demo started")
        return 130
    finally:
        if worker is not None:
            worker.stop()
        broker.stop()
        say("stopped: monitor and broker")


async def _campaign(opts: DemoOptions, bootstrap: str, paths: dict[str, dict[str, Path]], web_port: int,
                    say: Callable[[str], None]) -> None:
    records = {m: [json.loads(ln) for ln in p["receipts"].open("rb") if ln.strip()] for m, p in paths.items()}
    order = [r for pair in zip(*records.values(), strict=False) for r in pair]
    keys = paths[GAP]
    ring = Keyring.load(keys["keyring"])
    seen = _Seen()
    sent_at: dict[str, float] = {}

    pauses: dict[str, ControlState] = {}  # by escalation id, until the escalation is seen

    def tell_pause(state: ControlState, esc: dict[str, Any]) -> None:
        trigger = str(esc.get("triggered_by"))
        ms = f"{(state.seen_at - sent_at[trigger]) * 1000:.0f} ms" if trigger in sent_at else "soon"
        say(f"  PAUSE of {state.mission_id} reached the gateway {ms} after it sent receipt {trigger}, "
            "which tipped the escalation; the agent is held")

    def on_record(rec: dict[str, Any]) -> None:
        seen.counts[rec["schema"]] += 1
        if rec["schema"] == SCHEMA_STRATEGY:
            say(f"  strategy receipt {rec['receipt_id']}: {rec['review_status']}, "
                f"window of {rec['window']['actions']} actions")
        elif rec["schema"] == SCHEMA_ESCALATION:
            seen.escalations[rec["escalation_id"]] = rec
            say(f"  ESCALATION {rec['escalation_id']} ({rec['severity']}, {rec['detector']}): {rec['reason']}")
            if rec["escalation_id"] in pauses:
                tell_pause(pauses.pop(rec["escalation_id"]), rec)

    def on_control(state: ControlState) -> None:
        # control and out are two topics: a pause may arrive before its escalation
        seen.controls.append(state)
        esc = seen.escalations.get(state.cause or "")
        if state.state == "paused" and esc is not None:
            tell_pause(state, esc)
        elif state.state == "paused":
            pauses[state.cause or ""] = state
        else:
            say(f"  control: {state.mission_id} is {state.state.upper()} (cause {state.cause})")

    async with Gate(bootstrap, ring, signer=load_private_key(keys["gate-1"]), on_record=on_record,
                    on_control=on_control) as gate:
        say(f"\nagents: {len(order):,} receipts at about {opts.rate:.0f}/s\n")
        t0 = last = time.monotonic()
        held: list[dict[str, Any]] = []
        resume_at: float | None = None
        i = 0
        while i < len(order) or held:
            now = time.monotonic()
            if now - last >= 1.0:
                last = now
                say(f"t={now - t0:4.0f}s  receipts sent {gate.sent:6,}  ({gate.sent / (now - t0):4.0f}/s)  "
                    f"held {len(held):4,}  strategy receipts {seen.counts['missionwatch/strategy@1']}  "
                    f"escalations {seen.counts['missionwatch/escalation@1']}")
            if gate.is_paused(GAP):
                state = gate.state(GAP)
                if resume_at is None and state is not None and state.state == "paused":
                    resume_at = now + opts.review_after
                if resume_at is not None and now >= resume_at and state is not None:
                    await _resume(bootstrap, ring, keys, state, str(order[i - 1]["occurred_at"]), say)
                    resume_at = float("inf")  # one review per demo
                if i >= len(order) and resume_at == float("inf"):
                    await gate.wait_until(lambda: not gate.is_paused(GAP), 5)
                    if gate.is_paused(GAP):
                        break
            elif held:
                say(f"  the gateway releases {len(held)} held receipts of {GAP}")
                for rec in held:
                    await gate.send(rec)
                held = []
            if i < len(order):
                rec = order[i]
                i += 1
                if rec["mission_id"] == GAP and gate.is_paused(GAP):
                    held.append(rec)
                else:
                    await gate.send(rec)
                    sent_at[str(rec.get("receipt_id"))] = time.monotonic()
                await asyncio.sleep(max(0.0, t0 + gate.sent / opts.rate - time.monotonic()))
            else:
                await asyncio.sleep(0.05)
        await gate.flush()
        await asyncio.sleep(1.0)  # the last strategy receipts
    if held:
        say(f"\n{GAP} is paused again with {len(held)} receipts held: the gap persists, a person decides next")
    say(f"\ncampaign over: {gate.sent:,} receipts sent; the gateway saw {seen.counts['missionwatch/strategy@1']} "
        f"strategy receipts, {len(seen.escalations)} escalations, {len(seen.controls)} control signals, "
        f"{len(gate.problems)} bad signals")


async def _resume(bootstrap: str, ring: Keyring, keys: dict[str, Path], state: ControlState,
                  occurred_at: str, say: Callable[[str], None]) -> None:
    review = {"schema": "missionwatch/review@1", "review_id": "rv-demo-1", "mission_id": state.mission_id,
              "escalation_id": state.cause, "reviewer": "user:demo.reviewer", "decision": "resume",
              "note": "reviewed in the demo", "occurred_at": occurred_at}
    say("\n  to resume, a person publishes a review signed by a reviewer key to missionwatch.in "
        "(key = mission_id):")
    say(f"    {json.dumps(review)}")
    async with Gate(bootstrap, ring, signer=load_private_key(keys["reviewer-1"])) as desk:
        await desk.send(review)
