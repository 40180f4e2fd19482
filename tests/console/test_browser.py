"""The risk console in a real browser (Debian's chromium driven by Playwright) against the real
broker and a `missionwatch run` worker: a simulated campaign's escalation appears on the open
overview without a reload within 2 s, its evidence opens, a reviewer resumes it with a note, and
the gateway's client sees the mission running again. No console errors. Screenshots of the
overview, the mission page and the review queue are saved in build/screenshots/."""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from missionwatch.gate import Gate
from missionwatch.signing import Keyring, load_private_key
from missionwatch.sim import Campaign, write_campaign
from missionwatch.stream.broker import EmbeddedBroker
from missionwatch.stream.demo import write_demo_specs
from tests.conftest import ROOT, SPECS
from tests.console.conftest import desk_files, lines
from tests.stream.conftest import Worker

CHROMIUM = Path("/usr/bin/chromium")
SHOTS = ROOT / "build" / "screenshots"


def chromium() -> Path:
    """Debian's chromium, installed with apt-get when missing (never a downloaded browser)."""
    if not CHROMIUM.exists():
        apt = {"DEBIAN_FRONTEND": "noninteractive", "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"}
        subprocess.run(["apt-get", "update", "-qq"], check=True, env=apt)
        subprocess.run(["apt-get", "install", "-y", "-qq", "chromium"], check=True, env=apt)
    assert CHROMIUM.exists(), "apt-get did not install /usr/bin/chromium"
    return CHROMIUM


class Agent(threading.Thread):
    """The agents behind a gateway that obeys pauses: sends the campaign; while the mission is
    paused, holds the rest until it runs again."""

    def __init__(self, bootstrap: str, keyring: Keyring, gate_key: Path, records: list[dict[str, Any]]) -> None:
        super().__init__(daemon=True)
        self.bootstrap, self.keyring, self.gate_key, self.records = bootstrap, keyring, gate_key, records
        self.paused_at: float | None = None
        self.resumed_at: float | None = None
        self.cause: str | None = None
        self.held = 0
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            asyncio.run(self._go())
        except BaseException as exc:  # reported by the test
            self.error = exc

    async def _go(self) -> None:
        async with Gate(self.bootstrap, self.keyring, signer=load_private_key(self.gate_key)) as gate:
            for i, rec in enumerate(self.records):
                mission = str(rec["mission_id"])
                if gate.is_paused(mission):
                    self.paused_at, self.held = time.monotonic(), len(self.records) - i
                    self.cause = gate.state(mission).cause  # type: ignore[union-attr]
                    if not await gate.wait_until(lambda m=mission: not gate.is_paused(m), 180):  # type: ignore[misc]
                        return
                    self.resumed_at = time.monotonic()
                await gate.send(rec)
                if i % 20 == 19:
                    await asyncio.sleep(0.05)  # about 400 receipts a second
            await gate.flush()


@pytest.fixture(scope="module")
def console(broker: EmbeddedBroker, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    chromium()
    root = tmp_path_factory.mktemp("browser")
    specs = write_demo_specs(SPECS, root / "specs")  # a discount gap pauses the mission
    start = (datetime.now(UTC) - timedelta(days=3)).strftime("%Y-%m-%dT%H:%M:%SZ")
    c = write_campaign(Campaign(mission_id="retention-q4", seed=7, actions=3000, subjects=800, start=start,
                                discount_gap="age_band=65+", discount_gap_factor=0.3), root / "c")
    (root / "desk").mkdir()
    desk = desk_files(root / "desk", c)
    boards = root / "dashboards"  # the shipped panels, and a team's panel whose query is wrong
    boards.mkdir()
    shutil.copy(ROOT / "dashboards" / "mission.toml", boards)
    (boards / "team.toml").write_text('[[panel]]\ntitle = "Escalations by hour"\nchart = "table"\n'
                                      'query = "SELECT hour FROM escalations"\n')
    worker = Worker(broker, root / "data", desk["keyring"], c["monitor-1"], group="console-browser",
                    specs=specs, extra=("--reviewers", str(desk["reviewers"]), "--dashboards", str(boards)))
    try:
        worker.wait_assigned(want=4)
        yield {"worker": worker, "campaign": c, "tokens": desk["tokens"], "broker": broker,
               "keyring": Keyring.load(desk["keyring"]), "records": lines(c["receipts"])}
    finally:
        assert worker.stop() == 0


def test_an_escalation_reaches_the_open_overview_and_a_reviewer_resumes_it(console: dict[str, Any]) -> None:
    from playwright.sync_api import sync_playwright

    if SHOTS.exists():
        shutil.rmtree(SHOTS)
    SHOTS.mkdir(parents=True)
    base = f"http://127.0.0.1:{console['worker'].port}"
    problems: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1400, "height": 900})
        page.on("console", lambda m: problems.append(f"console {m.type}: {m.text}") if m.type == "error" else None)
        page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
        page.on("dialog", lambda d: d.accept(console["tokens"]["lee"]))
        page.goto(base + "/")
        page.wait_for_selector("#live:not(.off)")  # the event stream is open
        page.evaluate("window.__sameDocument = true")

        agent = Agent(console["broker"].bootstrap, console["keyring"], console["campaign"]["gate-1"],
                      console["records"])
        agent.start()
        page.wait_for_function("() => document.querySelector('#count-paused')?.textContent === '1'", timeout=120_000,
                               polling="raf")
        seen = time.monotonic()
        deadline = time.monotonic() + 30
        while agent.paused_at is None and time.monotonic() < deadline:
            time.sleep(0.01)
        assert agent.error is None and agent.paused_at is not None, agent.error
        # the pause reached the gateway and the page within 2 s of each other, without a reload
        print(f"the page showed the pause {(seen - agent.paused_at) * 1000:.0f} ms after the gateway saw it")
        assert seen - agent.paused_at < 2.0, seen - agent.paused_at
        assert page.evaluate("window.__sameDocument") is True
        row = page.locator("tr[data-mission='retention-q4']")
        assert "paused" in row.inner_text() and agent.held > 0
        page.screenshot(path=str(SHOTS / "overview.png"), full_page=True)

        page.click("#sign-in")
        page.wait_for_selector("text=Reviewing as user:lee.risk")
        page.goto(base + "/queue")
        card = page.locator(f"[data-escalation='{agent.cause}']")
        card.wait_for()
        assert "age_band=65+" in card.locator(".evidence").inner_text()  # the queue opens the evidence
        page.screenshot(path=str(SHOTS / "queue.png"), full_page=True)

        page.click("a[href='/missions/retention-q4']")
        page.wait_for_selector("#panels .js-plotly-plot")
        card = page.locator(f"#open-escalations [data-escalation='{agent.cause}']")
        card.locator("summary").click()
        evidence = card.locator(".evidence")
        assert evidence.evaluate("d => d.open") and "age_band=65+" in evidence.inner_text()
        assert "rest" in evidence.inner_text() and "min detectable gap" in evidence.inner_text()
        broken = page.locator("[data-panel='Escalations by hour'] .err")
        assert "escalations does not exist" in broken.inner_text()  # in its place; the rest draw
        query = page.locator("[data-panel='Discounts offered per age band (ledger, whole mission)'] .js-plotly-plot")
        query.wait_for()
        page.wait_for_timeout(300)
        page.screenshot(path=str(SHOTS / "mission.png"), full_page=True)

        card.locator("textarea").fill("Reviewed the 65+ offers: a stale eligibility rule; fixed in the gateway")
        card.locator("[data-decision=resume]").click()
        toast = page.locator(".toast", has_text="resume accepted")
        toast.wait_for(timeout=10_000)
        assert "running" in toast.inner_text()
        agent.join(120)
        assert agent.error is None and agent.resumed_at is not None  # the gateway released the agent
        page.wait_for_selector("#reviews")
        history = page.locator("#reviews").inner_text()
        assert "user:lee.risk" in history and "stale eligibility rule" in history
        page.screenshot(path=str(SHOTS / "mission-after-review.png"), full_page=True)
        browser.close()
    assert problems == []
    status = console["worker"].get("/api/missions/retention-q4/status")
    assert status[0] == 200 and json.loads(status[1])["state"] == "running"
