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
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..gate import ControlState, Gate
from ..records import SCHEMA_ESCALATION, SCHEMA_STRATEGY, parse_time
from ..signing import Keyring, load_private_key
from ..sim import Campaign, write_campaign
from .broker import EmbeddedBroker, create_topics, free_port, stop_process_group

__all__ = ["DemoOptions", "run_demo", "write_demo_specs"]

_DISCOUNT_RULE = 'metric = "discount_rate"\nharm = "lower"\n'
GAP, FAIR = "retention-gap", "retention-fair"
PAUSE_WAIT = 30.0
"""Seconds the agents wait, after their last receipt, for the gap mission's pause to arrive."""


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
    """What the demo's gateway sees on missionwatch.out and .control, told as it arrives."""

    say: Callable[[str], None]
    counts: Counter[str] = field(default_factory=Counter)
    escalations: dict[str, dict[str, Any]] = field(default_factory=dict)
    controls: list[ControlState] = field(default_factory=list)
    sent_at: dict[str, float] = field(default_factory=dict)
    """When the gateway sent each receipt, by receipt_id."""
    pauses: dict[str, ControlState] = field(default_factory=dict)
    """Pauses by escalation id, until the escalation is seen."""

    @property
    def paused_once(self) -> bool:
        """Whether a pause of the gap mission has reached the gateway."""
        return any(c.state == "paused" and c.mission_id == GAP for c in self.controls)

    def on_record(self, rec: dict[str, Any]) -> None:
        self.counts[rec["schema"]] += 1
        if rec["schema"] == SCHEMA_STRATEGY:
            self.say(f"  strategy receipt {rec['receipt_id']}: {rec['review_status']}, "
                     f"window of {rec['window']['actions']} actions")
        elif rec["schema"] == SCHEMA_ESCALATION:
            self.escalations[rec["escalation_id"]] = rec
            self.say(f"  ESCALATION {rec['escalation_id']} ({rec['severity']}, {rec['detector']}): "
                     f"{rec['reason']}")
            if rec["escalation_id"] in self.pauses:
                self._tell_pause(self.pauses.pop(rec["escalation_id"]), rec)

    def on_control(self, state: ControlState) -> None:
        # control and out are two topics: a pause may arrive before its escalation
        self.controls.append(state)
        esc = self.escalations.get(state.cause or "")
        if state.state == "paused" and esc is not None:
            self._tell_pause(state, esc)
        elif state.state == "paused":
            self.pauses[state.cause or ""] = state
        else:
            self.say(f"  control: {state.mission_id} is {state.state.upper()} (cause {state.cause})")

    def _tell_pause(self, state: ControlState, esc: dict[str, Any]) -> None:
        trigger = str(esc.get("triggered_by"))
        sent = self.sent_at.get(trigger)
        ms = f"{(state.seen_at - sent) * 1000:.0f} ms" if sent is not None else "soon"
        self.say(f"  PAUSE of {state.mission_id} reached the gateway {ms} after it sent receipt {trigger}, "
                 "which tipped the escalation; the agent is held")


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
    token = _reviewer_token(out, keys["reviewer-1"])
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
                          "--web-port", str(web_port), "--reviewers", str(out / "reviewers.json"),
                          "--ledger-every", "1", "--loglevel", "info"], log)
        say(f"monitor: `missionwatch run` (pid {worker.proc.pid}), http://127.0.0.1:{web_port}/metrics; "
            "joining its consumer group...")
        say(f"risk console: http://127.0.0.1:{web_port}/  (sign in to review as user:demo.reviewer with the "
            f"token {token})")
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
        say(_files(out, _ledger_counts(out / "data")))
        return 0
    except KeyboardInterrupt:
        say("\ninterrupted: stopping what the demo started")
        return 130
    finally:
        if worker is not None:
            worker.stop()
        broker.stop()
        say("stopped: monitor and broker")


def _ledger_counts(data: Path, settle: float = 10.0) -> dict[str, int]:
    """What the running monitor's live ledger holds once its commits have caught up (they come
    every second): rows per table."""
    from ..store.query import LedgerError, open_ledger

    tables = ("actions", "outcomes", "strategy_receipts", "escalations", "controls", "reviews", "rejected")
    counts: dict[str, int] = {}
    deadline = time.monotonic() + settle
    while time.monotonic() < deadline:
        try:
            con = open_ledger(data=data)
            now = {t: int((con.execute(f"SELECT count(*) FROM {t}").fetchone() or (0,))[0]) for t in tables}
            con.close()
        except LedgerError:
            now = {}
        if now and now == counts:  # two reads alike, a commit apart
            break
        counts = now
        time.sleep(1.5)
    return counts


def _files(out: Path, counts: dict[str, int]) -> str:
    """The demo's files, said and kept in out/README.md: the ledger, the out records, the notebooks."""
    notebooks = Path(__file__).resolve().parents[3] / "notebooks"
    link = out / "notebooks"
    if notebooks.is_dir() and not link.exists():
        link.symlink_to(notebooks, target_is_directory=True)
    held = ", ".join(f"{n:,} {t}" for t, n in counts.items()) or "nothing yet"
    text = f"""
files: {out}/
  campaigns, keys, specs, monitor.log
  analysts' ledger (the tables of docs/ledger.md, kept by the running monitor): {out}/data/ledger/
    holds {held}
    query it:  missionwatch sql --data {out}/data "select mission_id, count(*) from actions group by all"
    export:    missionwatch export --data {out}/data --mission {GAP} --format parquet --out {out}/export
  out records per mission in seq order: {out}/data/out/ (`missionwatch verify FILE --keys ...` takes each)
  notebooks for analysts and policy owners: {link}/ (fairness_audit, strategy_timeline, spec_variants;
    `open_ledger(data="{out}/data")` reads this ledger in a notebook)
"""
    (out / "README.md").write_text("# missionwatch demo output\n" + text.replace("\nfiles: ", "\nFiles: ", 1))
    return text


def _reviewer_token(out: Path, key: Path) -> str:
    """A fresh reviewer token for the console, kept (as its digest) in out/reviewers.json."""
    import secrets

    from ..console.review import token_digest

    token = secrets.token_urlsafe(18)
    entry = {"token_sha256": token_digest(token), "key": str(key.relative_to(out)), "reviewer": "user:demo.reviewer"}
    (out / "reviewers.json").write_text(json.dumps({"reviewers": [entry]}, indent=2) + "\n")
    return token


async def _campaign(opts: DemoOptions, bootstrap: str, paths: dict[str, dict[str, Path]], web_port: int,
                    say: Callable[[str], None]) -> None:
    records = {m: [json.loads(ln) for ln in p["receipts"].open("rb") if ln.strip()] for m, p in paths.items()}
    order = [r for pair in zip(*records.values(), strict=False) for r in pair]
    keys = paths[GAP]
    ring = Keyring.load(keys["keyring"])
    seen = _Seen(say)

    async def resume(state: ControlState, occurred_at: str) -> None:
        await _resume(bootstrap, ring, keys, state, occurred_at, say)

    async with Gate(bootstrap, ring, signer=load_private_key(keys["gate-1"]), on_record=seen.on_record,
                    on_control=seen.on_control) as gate:
        say(f"\nagents: {len(order):,} receipts at about {opts.rate:.0f}/s\n")
        agents = _Agents(gate, order, opts, seen, resume)
        await agents.run()
        await gate.flush()
        await asyncio.sleep(1.0)  # the last strategy receipts
    if agents.held:
        say(f"\n{GAP} is paused again with {len(agents.held)} receipts held: the gap persists, a person decides next")
    say(f"\ncampaign over: {gate.sent:,} receipts sent; the gateway saw {seen.counts['missionwatch/strategy@1']} "
        f"strategy receipts, {len(seen.escalations)} escalations, {len(seen.controls)} control signals, "
        f"{len(gate.problems)} bad signals")


class _Agents:
    """The simulated agents behind the gateway: they send `order` at `opts.rate`; while the gap
    mission is paused its receipts are held, a reviewer resumes it `opts.review_after` seconds
    into the pause (once per demo), and the held receipts are released when it runs again."""

    def __init__(self, gate: Gate, order: list[dict[str, Any]], opts: DemoOptions, seen: _Seen,
                 resume: Callable[[ControlState, str], Awaitable[None]]) -> None:
        self.gate, self.order, self.opts, self.seen, self.resume = gate, order, opts, seen, resume
        self.held: list[dict[str, Any]] = []
        self.resume_at: float | None = None
        """When the reviewer resumes the gap mission; inf once done."""
        self.i = 0
        """The next receipt of `order` to send."""
        self.ended_at: float | None = None
        """When the last receipt was sent and no pause had reached the gateway yet."""

    async def run(self) -> None:
        gate = self.gate
        t0 = last = time.monotonic()
        while self.i < len(self.order) or self.held or self._review_pending():
            now = time.monotonic()
            if now - last >= 1.0:
                last = now
                self.seen.say(f"t={now - t0:4.0f}s  receipts sent {gate.sent:6,}  "
                              f"({gate.sent / (now - t0):4.0f}/s)  held {len(self.held):4,}  "
                              f"strategy receipts {self.seen.counts['missionwatch/strategy@1']}  "
                              f"escalations {self.seen.counts['missionwatch/escalation@1']}")
            if gate.is_paused(GAP):
                if not await self._paused(now):
                    break
            elif self.held:
                self.seen.say(f"  the gateway releases {len(self.held)} held receipts of {GAP}")
                for rec in self.held:
                    await gate.send(rec)
                self.held = []
            if self.i < len(self.order):
                await self._next()
                await asyncio.sleep(max(0.0, t0 + gate.sent / self.opts.rate - time.monotonic()))
            else:
                await asyncio.sleep(0.05)

    def _review_pending(self) -> bool:
        """The gap mission's pause reached the gateway after the last receipt was sent (a busy
        machine): the reviewer still resumes it, so wait for the pause, then the review."""
        if self.resume_at == float("inf"):
            return False
        if self.resume_at is None and not self.seen.paused_once:
            return time.monotonic() < self._end_wait()
        return self.gate.is_paused(GAP)

    def _end_wait(self) -> float:
        if self.ended_at is None:
            self.ended_at = time.monotonic()
        return self.ended_at + PAUSE_WAIT

    async def _paused(self, now: float) -> bool:
        """The gap mission is paused: resume it when the review is due; False when every receipt
        is sent, the review done, and the mission is paused again (the demo ends there)."""
        gate = self.gate
        state = gate.state(GAP)
        if self.resume_at is None and state is not None and state.state == "paused":
            self.resume_at = now + self.opts.review_after
        if self.resume_at is not None and now >= self.resume_at and state is not None:
            await self.resume(state, _review_time(str(self.order[self.i - 1]["occurred_at"]), state))
            self.resume_at = float("inf")  # one review per demo
        if self.i >= len(self.order) and self.resume_at == float("inf"):
            await gate.wait_until(lambda: not gate.is_paused(GAP), 5)
            if gate.is_paused(GAP):
                return False
        return True

    async def _next(self) -> None:
        rec = self.order[self.i]
        self.i += 1
        if rec["mission_id"] == GAP and self.gate.is_paused(GAP):
            self.held.append(rec)
        else:
            await self.gate.send(rec)
            self.seen.sent_at[str(rec.get("receipt_id"))] = time.monotonic()


def _review_time(last_sent: str, state: ControlState) -> str:
    """A person reviews after the pause: never before the pause's own event time."""
    if state.issued_at is not None and parse_time(state.issued_at) > parse_time(last_sent):
        return state.issued_at
    return last_sent


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
