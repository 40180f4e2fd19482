"""The risk console over HTTP (aiohttp, inside the worker's web server): the pages, the JSON
API behind them, live events and the review endpoint.

- Pages: `/` (missions), `/missions/{id}`, `/queue`; static files under `/static/`, plotly.js
  from the installed `plotly` package (no CDN, no network).
- API (JSON): `/api/missions`, `/api/missions/{id}` (the page's data), `.../view`,
  `.../escalations`, `.../receipts`, `.../reviews`, `/api/queue`; `/api/events`, server-sent
  events (an escalation, receipt, control or review as it happens; `Last-Event-ID` resumes).
- Viewing is open, or needs the view token (`Authorization: Bearer`, or `?token=` for the
  event stream) when one is set; a reviewer token also opens it.
- `GET /api/session` (with a reviewer token) names the reviewer and hands out the CSRF token;
  `POST /api/missions/{id}/reviews` needs the reviewer token, that CSRF token in
  `X-CSRF-Token`, and an `Origin` equal to the console's own: the review is signed with the
  reviewer's key held by the server, published to `missionwatch.in`, and answered with its
  fate (accepted, or refused with the monitor's code and reason).
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from aiohttp import web

from ..signing import DECISIONS
from . import api
from .dashboards import load_panels, run_query
from .review import Desk, make_review, review_time

__all__ = ["Console", "console_routes"]

log = logging.getLogger("missionwatch.console")

Publish = Callable[[bytes, bytes], Awaitable[None]]
"""Sends (key, value) to missionwatch.in and returns once the broker has it."""

PAGES = {"/": ("missions", "Missions"), "/queue": ("queue", "Review queue"), "/missions/{mission_id}": ("mission", "Mission")}
"""Path -> (the page console.js draws, its title); one HTML shell serves them all."""
PLOTLY_TAG = '<script src="/static/plotly.min.js" defer></script>\n'

STATIC = {"console.js": "application/javascript", "console.css": "text/css"}
MAX_NOTE_CHARS = 4000
MAX_BODY_BYTES = 16_000


@dataclass
class Console:
    """What the console's handlers need: the missions, who may review, how to publish a review."""

    source: Any
    """An `api.Source` that also has a live `feed` (`history.Feed`) and knows
    review outcomes (`review_outcome`): the worker's `StreamCore`."""
    desk: Desk
    publish: Publish | None
    view_token: str | None = None
    review_wait: float = 5.0
    """Seconds a review request waits for the monitor's verdict on it before answering 202."""
    stopping: Callable[[], bool] = lambda: False
    stream_life: float = 60.0
    """Seconds an event stream stays open; the browser reconnects and resumes (Last-Event-ID)."""
    dashboards: Path | None = None
    """The directory of dashboard files (console.dashboards); read again on every request."""


def _bearer(request: web.Request) -> str | None:
    """The request's token (a header, else `?token=`); None when absent or not ASCII (no token
    this console hands out or accepts is: a header's other bytes arrive as surrogates)."""
    h = request.headers.get("Authorization", "")
    token = h[7:].strip() if h.lower().startswith("bearer ") else request.query.get("token", "")
    return token if token and token.isascii() else None


def _error(status: int, message: str, **extra: Any) -> web.Response:
    return web.json_response({"error": message, **extra}, status=status)


def _may_view(c: Console, request: web.Request) -> bool:
    if c.view_token is None:
        return True
    token = _bearer(request)
    if token is None:
        return False
    return hmac.compare_digest(token.encode(), c.view_token.encode()) or c.desk.reviewer(token) is not None


def _viewing(c: Console, build: Callable[[web.Request], Any]) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    async def handler(request: web.Request) -> web.StreamResponse:
        if not _may_view(c, request):
            return _error(401, "viewing needs the console's view token (Authorization: Bearer ...)")
        body = build(request)
        if body is None:
            mid = request.match_info.get("mission_id")
            return _error(404, f"no such mission on this worker: {mid!r} (unknown, or its partition is "
                          "served by another worker)")
        return web.json_response(body, dumps=lambda o: json.dumps(o, ensure_ascii=False))
    return handler


def _same_origin(request: web.Request) -> str | None:
    """Why a state-changing request is not from the console's own page, or None."""
    origin = request.headers.get("Origin")
    own = f"{request.scheme}://{request.host}"
    if origin is None:
        return "the request names no Origin: reviews are taken only from the console's own page"
    if origin != own:
        return f"cross-site request refused: Origin {origin!r} is not {own!r}"
    site = request.headers.get("Sec-Fetch-Site")
    if site is not None and site not in ("same-origin", "none"):
        return f"cross-site request refused (Sec-Fetch-Site: {site})"
    return None


async def _session(c: Console, request: web.Request) -> web.Response:
    token = _bearer(request)
    who = c.desk.reviewer(token)
    if token is None or who is None:
        return _error(401, "not a reviewer token of this console")
    return web.json_response({"reviewer": who.reviewer, "key_id": who.signer.key_id, "csrf": c.desk.csrf(token)})


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    keys = [k for k, _ in pairs]
    if len(set(keys)) != len(keys):
        raise ValueError(f"a key is given twice: {sorted(k for k in set(keys) if keys.count(k) > 1)[0]!r}")
    return dict(pairs)


async def _body(request: web.Request) -> dict[str, Any] | str:
    if request.content_length is not None and request.content_length > MAX_BODY_BYTES:
        return f"the request body is larger than {MAX_BODY_BYTES} bytes"
    raw = await request.content.read(MAX_BODY_BYTES + 1)
    if len(raw) > MAX_BODY_BYTES:
        return f"the request body is larger than {MAX_BODY_BYTES} bytes"
    try:
        doc = json.loads(raw, object_pairs_hook=_unique_keys)
    except (ValueError, RecursionError) as exc:
        return f"the body is not one unambiguous JSON object ({str(exc)[:200]})"
    if not isinstance(doc, dict):
        return "the body must be a JSON object"
    decision, esc, note = doc.get("decision"), doc.get("escalation_id"), doc.get("note")
    if decision not in DECISIONS:
        return f"decision must be one of {', '.join(DECISIONS)}"
    if esc is not None and (not isinstance(esc, str) or not esc):
        return "escalation_id must be a non-empty string"
    if note is not None and (not isinstance(note, str) or len(note) > MAX_NOTE_CHARS):
        return f"note must be text of at most {MAX_NOTE_CHARS} characters"
    return doc


async def _review(c: Console, request: web.Request) -> web.Response:
    mid = request.match_info["mission_id"]
    why = _same_origin(request)
    if why is not None:
        return _error(403, why)
    token = _bearer(request) if "Authorization" in request.headers else None  # never from the URL
    who = c.desk.reviewer(token)
    if token is None or who is None:
        return _error(401, "reviewing needs a reviewer token of this console (Authorization: Bearer ...)")
    if not c.desk.csrf_ok(token, request.headers.get("X-CSRF-Token")):
        return _error(403, "missing or wrong X-CSRF-Token (GET /api/session hands it out)")
    doc = await _body(request)
    if isinstance(doc, str):
        return _error(400, doc)
    if doc.get("reviewer") not in (None, who.reviewer):
        return _error(403, f"this token reviews as {who.reviewer!r}; a review it makes cannot name "
                      f"{doc.get('reviewer')!r}", code="reviewer_not_key_holder")
    view, h = c.source.view(mid), c.source.history(mid)
    if view is None:
        return _error(404, f"no such mission on this worker: {mid!r}")
    if c.publish is None:
        return _error(503, "this console cannot publish reviews")
    esc = doc.get("escalation_id")
    answered = h.escalations.get(esc) if (h is not None and esc) else None
    last = h.last_receipt if h is not None else None
    when = review_time(answered.get("issued_at") if answered else None, last.get("issued_at") if last else None)
    rec = make_review(who.signer, mission_id=mid, decision=doc["decision"], reviewer=who.reviewer,
                      occurred_at=when, escalation_id=esc, note=doc.get("note"))
    await c.publish(mid.encode(), json.dumps(rec, ensure_ascii=False, separators=(",", ":")).encode())
    log.info("review %s of %s by %s (%s) published", rec["review_id"], mid, who.reviewer, doc["decision"])
    deadline = time.monotonic() + c.review_wait
    while time.monotonic() < deadline:
        fate = c.source.review_outcome(rec["review_id"])
        if fate is not None:
            after = c.source.view(mid)
            now = {"state": after.state, "resume_approvals": after.resume_approvals} if after else {}
            status = 200 if fate["outcome"] == "accepted" else 409
            return web.json_response({**fate, **now, "review": rec}, status=status)
        await asyncio.sleep(0.05)
    return web.json_response({"outcome": "pending", "review_id": rec["review_id"], "review": rec,
                              "detail": "published; the monitor has not answered yet"}, status=202)


def _frame(n: int, event: dict[str, Any]) -> bytes:
    return f"id: {n}\nevent: {event['kind']}\ndata: {json.dumps(event, ensure_ascii=False)}\n\n".encode()


async def _events(c: Console, request: web.Request) -> web.StreamResponse:
    if not _may_view(c, request):
        return _error(401, "viewing needs the console's view token (?token=...)")
    resp = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache",
                                       "X-Accel-Buffering": "no"})
    await resp.prepare(request)
    feed = c.source.feed
    try:
        last = int(request.headers.get("Last-Event-ID") or request.query.get("after") or feed.seq)
    except ValueError:
        last = feed.seq
    await resp.write(f"retry: 500\nevent: hello\ndata: {json.dumps({'seq': feed.seq})}\n\n".encode())
    opened, beat = time.monotonic(), time.monotonic()
    try:
        while not c.stopping() and time.monotonic() - opened < c.stream_life:
            new = feed.after(last)
            if new and new[0][0] > last + 1:  # events were dropped meanwhile: the page reloads its data
                await resp.write(b"event: resync\ndata: {}\n\n")
            for n, ev in new:
                await resp.write(_frame(n, ev))
                last = n
            if time.monotonic() - beat > 15:
                await resp.write(b": keep-alive\n\n")
                beat = time.monotonic()
            await asyncio.sleep(0.2)
    except (ConnectionResetError, asyncio.CancelledError):
        pass
    return resp


def _static_dir() -> Path:
    return Path(str(resources.files("missionwatch.console") / "static"))


def _plotly_js() -> Path:
    return Path(str(resources.files("plotly") / "package_data" / "plotly.min.js"))


def _page(page: str, title: str) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    html = ((_static_dir() / "page.html").read_text().replace("__PAGE__", page).replace("__TITLE__", title)
            .replace("__SCRIPTS__", PLOTLY_TAG if page == "mission" else ""))

    async def handler(request: web.Request) -> web.StreamResponse:
        return web.Response(text=html, content_type="text/html", headers={"Cache-Control": "no-cache"})
    return handler


async def _asset(request: web.Request) -> web.StreamResponse:
    name = request.match_info["name"]
    if name == "plotly.min.js":
        return web.FileResponse(_plotly_js(), headers={"Content-Type": "application/javascript",
                                                       "Cache-Control": "max-age=86400"})
    if name not in STATIC:
        return _error(404, f"no such file: {name!r}")
    return web.FileResponse(_static_dir() / name, headers={"Content-Type": STATIC[name],
                                                           "Cache-Control": "no-cache"})


def _panels(c: Console) -> list[dict[str, Any]]:
    if c.dashboards is None:
        return [{"title": "Dashboards", "error": "this console has no dashboards directory"}]
    return load_panels(c.dashboards)


def _panel_data(c: Console, request: web.Request) -> dict[str, Any] | None:
    mid = request.match_info["mission_id"]
    rows = c.source.ledger_rows(mid)
    if rows is None:
        return None
    panels = _panels(c)
    try:
        index = int(request.match_info["index"])
        if not 0 <= index < len(panels):
            raise IndexError(index)
        panel = panels[index]
    except (ValueError, IndexError):
        return {"error": f"no panel {request.match_info['index']!r} (GET /api/dashboards lists them)"}
    if "error" in panel or not panel.get("query"):
        return {"error": panel.get("error") or f"panel {panel['title']!r} has no query"}
    return {"panel": panel["title"], **run_query(panel["query"], *rows)}


def console_routes(c: Console) -> list[web.RouteDef]:
    mid = "{mission_id}"
    s = c.source
    routes = [web.get(path, _page(page, title)) for path, (page, title) in PAGES.items()]
    routes += [
        web.get("/static/{name}", _asset),
        web.get("/api/missions", _viewing(c, lambda r: api.missions(s))),
        web.get("/api/queue", _viewing(c, lambda r: api.queue(s))),
        web.get("/api/dashboards", _viewing(c, lambda r: {"panels": _panels(c)})),
        web.get(f"/api/missions/{mid}/panels/{{index}}", _viewing(c, lambda r: _panel_data(c, r))),
        web.get(f"/api/missions/{mid}", _viewing(c, lambda r: api.mission(s, r.match_info["mission_id"]))),
        web.get(f"/api/missions/{mid}/view", _viewing(c, lambda r: api.view(s, r.match_info["mission_id"]))),
        web.get(f"/api/missions/{mid}/escalations",
                _viewing(c, lambda r: api.escalations(s, r.match_info["mission_id"]))),
        web.get(f"/api/missions/{mid}/receipts", _viewing(c, lambda r: api.receipts(s, r.match_info["mission_id"]))),
        web.get(f"/api/missions/{mid}/reviews", _viewing(c, lambda r: api.reviews(s, r.match_info["mission_id"]))),
        web.get("/api/events", lambda r: _events(c, r)),
        web.get("/api/session", lambda r: _session(c, r)),
        web.post(f"/api/missions/{mid}/reviews", lambda r: _review(c, r)),
    ]
    return routes
