"""The console served by a real `missionwatch run` worker on the real embedded broker: the API
behind the pages, live events, and reviews: refused ones change nothing, an accepted one
releases the mission and its control signal reaches the topic."""

from __future__ import annotations

import http.client
import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from missionwatch.stream.broker import EmbeddedBroker
from tests.console.conftest import Http, campaigns, desk_files, lines
from tests.stream.conftest import Worker, consume, produce

VIEW = "viewer-token-0123456789"


@pytest.fixture(scope="module")
def served(broker: EmbeddedBroker, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    root = tmp_path_factory.mktemp("served")
    c = campaigns(root)
    (root / "desk").mkdir()
    desk = desk_files(root / "desk", c["gap"])
    worker = Worker(broker, root / "data", desk["keyring"], c["gap"]["monitor-1"], group="console-web",
                    specs=c["specs"], extra=("--reviewers", str(desk["reviewers"]), "--view-token", VIEW))
    try:
        worker.wait_assigned(want=4)
        produce(broker.bootstrap, [json.dumps(r).encode() for name in ("gap", "fair")
                                   for r in lines(c[name]["receipts"])])
        http = Http(worker.port)
        deadline = time.monotonic() + 60
        rows: dict[str, Any] = {}
        while time.monotonic() < deadline:
            code, body = http.get("/api/missions", VIEW)
            rows = {r["mission_id"]: r for r in body["missions"]} if code == 200 else {}
            if rows.get("m-gap", {}).get("state") == "paused" and rows.get("m-fair", {}).get("actions") == 1500:
                break
            time.sleep(0.2)
        assert rows["m-gap"]["state"] == "paused", rows
        yield {"http": http, "worker": worker, "tokens": desk["tokens"], "broker": broker, "desk": root / "desk",
               "gate_key": c["gap"]["gate-1"]}
    finally:
        assert worker.stop() == 0


def test_viewing_needs_the_view_token_or_a_reviewer_token(served: dict[str, Any]) -> None:
    http, tokens = served["http"], served["tokens"]
    assert http.get("/api/missions")[0] == 401
    assert http.get("/api/missions", "not-the-token")[0] == 401
    assert http.get("/api/queue", VIEW)[0] == 200 and http.get("/api/queue", tokens["lee"])[0] == 200
    assert http.get(f"/api/missions/m-gap?token={VIEW}")[0] == 200  # the event stream's way
    assert http.get("/api/events")[0] == 401
    assert http.get("/api/session", VIEW)[0] == 401  # viewing is not reviewing
    assert http.get("/api/missions?token=%C3%BC%E2%80%8B")[0] == 401  # a token that is not ASCII


def test_the_api_answers_what_the_pages_show(served: dict[str, Any]) -> None:
    http = served["http"]
    code, body = http.get("/api/missions", VIEW)
    assert code == 200 and body["counts"]["paused"] == 1 and body["counts"]["running"] == 1
    code, page = http.get("/api/missions/m-gap", VIEW)
    assert code == 200 and page["view"]["console_state"] == "paused"
    (esc,) = page["escalations"]
    assert esc["open"] and esc["evidence"]["cohort"] == "age_band=65+"
    for part in ("view", "escalations", "receipts", "reviews"):
        assert http.get(f"/api/missions/m-gap/{part}", VIEW)[0] == 200
    assert http.get("/api/missions/m-gap/view", VIEW)[1]["state"] == "paused"
    assert http.get("/api/missions/m-gap/escalations", VIEW)[1][0]["escalation_id"] == esc["escalation_id"]
    code, q = http.get("/api/queue", VIEW)
    assert q["open"] == 1 and q["groups"][0]["escalations"][0]["escalation_id"] == esc["escalation_id"]
    code, err = http.get("/api/missions/m-nope", VIEW)
    assert code == 404 and "m-nope" in err["error"]
    for path in ("/", "/queue", "/missions/m-gap"):
        code, html = http.get(path)
        assert code == 200 and "console.js" in html
    code, js = http.get("/static/plotly.min.js")
    assert code == 200 and len(js) > 1_000_000  # from the installed plotly package
    assert http.get("/static/..%2F..%2Fhistory.py")[0] == 404
    assert http.get("/api/missions/m-gap/status")[0] == 200  # CONTRACT 4's answers are still there
    code, boards = http.get("/api/dashboards", VIEW)
    (bar,) = [p for p in boards["panels"] if p["chart"] == "bar"]
    code, data = http.get(f"/api/missions/m-gap/panels/{bar['index']}", VIEW)
    assert code == 200 and data["columns"] == ["age_band", "discount_share"] and len(data["rows"]) == 4
    for odd in ("-1", "999", "x", "1e3"):
        code, data = http.get(f"/api/missions/m-gap/panels/{odd}", VIEW)
        assert code == 200 and data["error"].startswith("no panel"), odd
    assert http.get("/api/missions/m-nope/panels/0", VIEW)[0] == 404
    for odd_id in ("%00", "m%E2%80%8Bgap", "x" * 5000, "%F0%9F%98%80"):
        assert http.get(f"/api/missions/{odd_id}", VIEW)[0] in (404, 414), odd_id


def _state(http: Http) -> tuple[Any, ...]:
    page = http.get("/api/missions/m-gap", VIEW)[1]
    return (page["view"]["state"], page["view"]["open_escalations"], page["reviews"], page["controls"])


def test_a_review_refused_for_any_reason_changes_nothing(served: dict[str, Any]) -> None:
    http, tokens, worker = served["http"], served["tokens"], served["worker"]
    before = _state(http)
    esc = before[1][0]
    lee = tokens["lee"]
    csrf = http.get("/api/session", lee)[1]["csrf"]
    ok = {"decision": "resume", "escalation_id": esc, "note": "n"}
    refusals = [
        (401, http.review("m-gap", ok, None, csrf=csrf)),
        (401, http.review("m-gap", ok, VIEW, csrf=csrf)),
        (401, http.review("m-gap", ok, "forged-token", csrf=csrf)),
        (403, http.review("m-gap", ok, lee)),  # no CSRF token
        (403, http.review("m-gap", ok, lee, csrf="0" * 64)),
        (403, http.review("m-gap", ok, lee, csrf=csrf, origin="https://evil.example")),
        (403, http.review("m-gap", ok, lee, csrf=csrf, origin=None)),
        (403, http.call("POST", "/api/missions/m-gap/reviews", ok, {"Origin": http.origin, "X-CSRF-Token": csrf,
                                                                    "Sec-Fetch-Site": "cross-site"}, lee)),
        (403, http.review("m-gap", {**ok, "reviewer": "user:someone.else"}, lee, csrf=csrf)),
        (400, http.review("m-gap", {**ok, "decision": "approve"}, lee, csrf=csrf)),
        (400, http.review("m-gap", b"{not json", lee, csrf=csrf)),
        (400, http.review("m-gap", b'{"decision": "resume", "decision": "terminate"}', lee, csrf=csrf)),
        (400, http.review("m-gap", b"[" * 8000 + b"]" * 8000, lee, csrf=csrf)),
        (400, http.review("m-gap", b'{"decision": "resume", "escalation_id": 1e999}', lee, csrf=csrf)),
        (400, http.review("m-gap", {**ok, "note": "x" * 20_000}, lee, csrf=csrf)),
        (404, http.review("m-nope", ok, lee, csrf=csrf)),
        (401, http.review("m-gap", ok, "t\u00f6k\u00e9n", csrf=csrf)),  # not ASCII: refused, not a crash
        (403, http.call("POST", "/api/missions/m-gap/reviews", ok, {"Origin": http.origin,
                                                                    "X-CSRF-Token": "\u00fc" * 64}, lee)),
    ]
    for want, (code, body) in refusals:
        assert code == want, body
        assert body["error"]
    assert refusals[8][1][1]["code"] == "reviewer_not_key_holder"
    assert "given twice: 'decision'" in refusals[11][1][1]["error"]
    # refused by the monitor itself: kim's key is scoped to other missions; an unknown escalation
    kim = tokens["kim"]
    code, body = http.review("m-gap", ok, kim, csrf=http.get("/api/session", kim)[1]["csrf"])
    assert code == 409 and body["outcome"] == "refused" and body["code"] == "reviewer_out_of_scope", body
    code, body = http.review("m-gap", {**ok, "escalation_id": "esc-nope"}, lee, csrf=csrf)
    assert code == 409 and body["code"] == "unknown_escalation", body
    assert _state(http) == before
    assert worker.metrics()['missionwatch_rejected_total{code="reviewer_out_of_scope"}'] == 1


def _review_cli(served: dict[str, Any], *args: str) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "missionwatch.cli", "review", "m-gap", "--broker", served["broker"].url, *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=60)


def test_the_review_command_is_refused_where_the_page_is(served: dict[str, Any]) -> None:
    http, desk = served["http"], served["desk"]
    before = _state(http)
    esc = before[1][0]
    kim, lee, ring = str(desk / "reviewer-kim.pem"), str(desk / "reviewer-1.pem"), str(desk / "keyring.json")
    out = _review_cli(served, "--decision", "resume", "--escalation", esc, "--key", kim, "--keys", ring)
    assert out.returncode == 1 and "refused (reviewer_out_of_scope)" in out.stderr, out
    out = _review_cli(served, "--decision", "resume", "--escalation", esc, "--key", kim, "--reviewer", "user:lee.risk")
    assert out.returncode == 1 and "refused (reviewer_not_key_holder)" in out.stderr, out  # the monitor says so
    out = _review_cli(served, "--decision", "resume", "--escalation", esc, "--key", kim, "--reviewer",
                      "user:lee.risk", "--keys", ring)
    assert out.returncode == 2 and "belongs to 'user:kim'" in out.stderr, out  # caught before publishing
    out = _review_cli(served, "--decision", "resume", "--escalation", "esc-nope", "--key", lee, "--reviewer", "user:lee.risk")
    assert out.returncode == 1 and "refused (unknown_escalation)" in out.stderr, out
    out = _review_cli(served, "--decision", "resume", "--escalation", esc, "--key", str(served["gate_key"]),
                      "--reviewer", "user:lee.risk")
    assert out.returncode == 1 and "refused (wrong_role)" in out.stderr, out
    out = _review_cli(served, "--decision", "approve", "--key", lee, "--reviewer", "user:lee.risk")
    assert out.returncode == 2 and "decision must be one of" in out.stderr
    assert _state(http) == before


def _events(port: int) -> tuple[http.client.HTTPConnection, Any]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.request("GET", f"/api/events?token={VIEW}")
    resp = conn.getresponse()
    assert resp.status == 200 and resp.getheader("Content-Type") == "text/event-stream"
    return conn, resp


def _next_events(resp: Any, want: set[str], within: float) -> dict[str, dict[str, Any]]:
    got: dict[str, dict[str, Any]] = {}
    kind = None
    deadline = time.monotonic() + within
    while not want <= set(got) and time.monotonic() < deadline:
        line = resp.fp.readline().decode().rstrip("\n")
        if line.startswith("event: "):
            kind = line[7:]
        elif line.startswith("data: ") and kind is not None:
            got[kind] = json.loads(line[6:])
    return got


def test_a_resume_from_the_console_releases_the_mission_live(served: dict[str, Any]) -> None:
    http, lee, worker = served["http"], served["tokens"]["lee"], served["worker"]
    esc = _state(http)[1][0]
    conn, resp = _events(worker.port)
    try:
        assert "hello" in _next_events(resp, {"hello"}, 5)
        session = http.get("/api/session", lee)[1]
        assert session["reviewer"] == "user:lee.risk" and session["key_id"] == "reviewer-1"
        t0 = time.monotonic()
        code, body = http.review("m-gap", {"decision": "resume", "escalation_id": esc, "note": "gap explained"},
                                 lee, csrf=session["csrf"])
        assert code == 200 and body["outcome"] == "accepted", body
        got = _next_events(resp, {"review", "control"}, 2.0)
        assert time.monotonic() - t0 < 2.0 + 5.0  # the POST waits for the verdict; the events follow it
        assert got["control"]["state"] == "running" and got["control"]["cause"] == body["review_id"]
        assert got["review"]["reviewer"] == "user:lee.risk"
    finally:
        conn.close()
    view, open_escalations, reviews, _ = _state(http)
    assert view == "running" and open_escalations == []
    assert reviews[-1]["note"] == "gap explained" and reviews[-1]["key_id"] == "reviewer-1"
    controls = [json.loads(v) for _, _, _, v in consume(served["broker"].bootstrap, "missionwatch.control", until=2)]
    assert [c["state"] for c in controls if c["mission_id"] == "m-gap"] == ["paused", "running"]
    assert http.get("/api/queue", VIEW)[1]["open"] == 0


def test_the_review_command_pauses_and_resumes_with_the_reviewers_own_key(served: dict[str, Any]) -> None:
    http, desk = served["http"], served["desk"]
    lee, ring = str(desk / "reviewer-1.pem"), str(desk / "keyring.json")
    out = _review_cli(served, "--decision", "pause", "--key", lee, "--keys", ring, "--reviewer", "user:lee.risk",
                      "--note", "checking the 65+ offers again")
    assert out.returncode == 0 and "accepted; the mission is paused" in out.stdout, out
    rid = out.stdout.split()[1]
    assert _state(http)[0] == "paused"
    out = _review_cli(served, "--decision", "resume", "--escalation", rid, "--key", lee, "--keys", ring)
    assert out.returncode == 2 and "name yourself with --reviewer" in out.stderr  # the keyring binds no name
    out = _review_cli(served, "--decision", "resume", "--escalation", rid, "--key", lee, "--reviewer", "user:lee.risk")
    assert out.returncode == 0 and "by user:lee.risk: accepted; the mission is running" in out.stdout, out
    reviews = _state(http)[2]
    assert [(r["decision"], r["reviewer"]) for r in reviews[-2:]] == [("pause", "user:lee.risk"),
                                                                      ("resume", "user:lee.risk")]
    assert reviews[-2]["note"] == "checking the 65+ offers again"


def test_a_reviewers_file_that_lets_a_key_sign_for_someone_else_does_not_load(tmp_path: Path) -> None:
    from missionwatch.console.review import Desk, DeskError
    from missionwatch.signing import Keyring, KeyScope, Signer, write_private_key

    sam = Signer.generate("reviewer-sam")
    ring = Keyring()
    ring.add(sam.key_id, sam.public_key, "reviewer", KeyScope(reviewer="user:sam"))
    write_private_key(sam, tmp_path / "reviewer-sam.pem")
    f = tmp_path / "reviewers.json"
    f.write_text(json.dumps({"reviewers": [{"token_sha256": "ab" * 32, "key": "reviewer-sam.pem", "reviewer": "user:lee"}]}))
    with pytest.raises(DeskError, match="belongs to 'user:sam'"):
        Desk.load(f, ring)
    f.write_text(json.dumps({"reviewers": [{"token_sha256": "ab" * 32, "key": "reviewer-sam.pem"}]}))
    assert Desk.load(f, ring)
    f.write_text("{")
    with pytest.raises(DeskError, match="cannot read"):
        Desk.load(f, ring)
