"""A paused mission and a fair one, replayed offline into a console source (no broker)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from missionwatch.console.source import MonitorSource
from missionwatch.monitor import Monitor
from missionwatch.signing import Keyring, load_private_key
from missionwatch.sim import Campaign, write_campaign
from missionwatch.spec import SpecRegistry
from missionwatch.stream.demo import write_demo_specs
from tests.conftest import SPECS
from tests.stream.conftest import broker  # noqa: F401  (the real embedded broker, per module)


def campaigns(root: Path) -> dict[str, Any]:
    """m-gap: a discount gap for 65+ that pauses it under the demo specs; m-fair: nothing planted."""
    specs = write_demo_specs(SPECS, root / "specs")
    gap = write_campaign(Campaign(mission_id="m-gap", seed=7, actions=3000, subjects=800,
                                  discount_gap="age_band=65+", discount_gap_factor=0.3), root / "gap",
                         seed_keys=True)
    fair = write_campaign(Campaign(mission_id="m-fair", seed=7, actions=1500, subjects=600), root / "fair",
                          seed_keys=True)  # the same seed: the same keys
    return {"specs": specs, "gap": gap, "fair": fair}


@pytest.fixture(scope="module")
def offline(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("console")
    c = campaigns(root)
    keyring = Keyring.load(c["gap"]["keyring"])
    return {**c, "keyring": keyring, "reviewer": load_private_key(c["gap"]["reviewer-1"]),
            "monitor": load_private_key(c["gap"]["monitor-1"])}


def source(offline: dict[str, Any]) -> tuple[MonitorSource, list[dict[str, Any]]]:
    """A fresh source fed both campaigns; every out record, in order."""
    m = Monitor(SpecRegistry.load_dir(offline["specs"]), signer=offline["monitor"], keyring=offline["keyring"])
    src = MonitorSource(m)
    out: list[dict[str, Any]] = []
    for name in ("gap", "fair"):
        for ln in offline[name]["receipts"].open("rb"):
            if ln.strip():
                out += src.process(ln).out
    return src, out


def lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(ln) for ln in path.open("rb") if ln.strip()]


class Http:
    """A client of a worker's console, as a browser on the console's own origin would be."""

    def __init__(self, port: int) -> None:
        self.origin = f"http://127.0.0.1:{port}"

    def call(self, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None,
             token: str | None = None) -> tuple[int, Any]:
        import urllib.error
        import urllib.request

        h = dict(headers or {})
        if token is not None:
            h["Authorization"] = f"Bearer {token}"
        data = json.dumps(body).encode() if body is not None and not isinstance(body, bytes) else body
        if data is not None:
            h.setdefault("Content-Type", "application/json")
        req = urllib.request.Request(self.origin + path, data=data, headers=h, method=method)
        try:
            with urllib.request.urlopen(req, timeout=15) as r:
                raw, code = r.read(), r.status
        except urllib.error.HTTPError as e:
            raw, code = e.read(), e.code
        try:
            return code, json.loads(raw)
        except ValueError:
            return code, raw.decode(errors="replace")

    def get(self, path: str, token: str | None = None) -> tuple[int, Any]:
        return self.call("GET", path, token=token)

    def review(self, mission: str, body: Any, token: str | None, *, csrf: str | None = None,
               origin: str | None = "own") -> tuple[int, Any]:
        headers: dict[str, str] = {}
        if origin is not None:
            headers["Origin"] = self.origin if origin == "own" else origin
        if csrf is not None:
            headers["X-CSRF-Token"] = csrf
        return self.call("POST", f"/api/missions/{mission}/reviews", body, headers, token)


def desk_files(root: Path, campaign: dict[str, Path]) -> dict[str, Any]:
    """A keyring with the campaign's keys and one more reviewer, and the console's reviewers file:
    lee (reviewer-1, any mission) and kim (a key the keyring scopes to missions other-*)."""
    import hashlib
    import shutil

    from missionwatch.signing import KeyScope, Signer, write_private_key

    ring = Keyring.load(campaign["keyring"])
    kim = Signer.generate("reviewer-kim")
    ring.add(kim.key_id, kim.public_key, "reviewer", KeyScope(missions=("other-*",), reviewer="user:kim"))
    write_private_key(kim, root / "reviewer-kim.pem")
    (root / "keyring.json").write_text(json.dumps(ring.to_json()))
    shutil.copy(campaign["reviewer-1"], root / "reviewer-1.pem")
    tokens = {"lee": "lee-token-0123456789", "kim": "kim-token-0123456789"}
    entries = [{"token_sha256": hashlib.sha256(tokens["lee"].encode()).hexdigest(), "key": "reviewer-1.pem",
                "reviewer": "user:lee.risk"},
               {"token_sha256": hashlib.sha256(tokens["kim"].encode()).hexdigest(), "key": "reviewer-kim.pem"}]
    (root / "reviewers.json").write_text(json.dumps({"reviewers": entries}))
    return {"keyring": root / "keyring.json", "reviewers": root / "reviewers.json", "tokens": tokens}
