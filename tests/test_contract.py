"""docs/CONTRACT.md and the code name the same things, both ways.

Every record kind, record field, rejection and escalation code, command, flag,
topic, admission limit, HTTP path, HTTP body field and metric that the
contract names must exist in the code, and everything of those kinds that the
code defines must be named in the contract. Each list is taken from the code
itself (records.py, codes.py, the Typer app, the service's routes, a run of
the core), so a new code, field or flag fails here until it is documented.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import re
from types import SimpleNamespace
from typing import Any, get_args

import pytest
import typer

from missionwatch import records
from missionwatch.admission import Limits
from missionwatch.cli import app
from missionwatch.codes import EscalationCode, RejectionCode
from missionwatch.core.mission import StateName as MissionStateName
from missionwatch.detect.fairness import Verdict
from missionwatch.detect.risk import RiskVerdict
from missionwatch.monitor import Monitor
from missionwatch.replay import replay_lines
from missionwatch.signing import KeyScope, Signer
from missionwatch.spec import SpecRegistry
from missionwatch.verify import VerifyReport
from tests.conftest import ROOT, action, line, paused_awaiting_a_second_reviewer, stamp

DOC = (ROOT / "docs" / "CONTRACT.md").read_text(encoding="utf-8")
FLAG = re.compile(r"(?<![\w-])--[a-z][a-z0-9-]*")


# ------------------------------------------------------------------ the document
def section(marker: str) -> str:
    """The text under the first heading containing `marker`, up to the next heading of the
    same or a higher level (fenced code blocks are not searched for headings)."""
    lines, fenced, start, level = DOC.splitlines(), False, None, 0
    for i, text in enumerate(lines):
        if text.startswith("```"):
            fenced = not fenced
            continue
        heading = None if fenced else re.match(r"(#+) ", text)
        if heading is None:
            continue
        if start is not None and len(heading.group(1)) <= level:
            return "\n".join(lines[start:i])
        if start is None and marker in text:
            start, level = i, len(heading.group(1))
    assert start is not None, f"docs/CONTRACT.md has no heading containing {marker!r}"
    return "\n".join(lines[start:])


def first_cells(text: str) -> list[str]:
    """The back-quoted names in the first cell of each table row of `text`, quotes removed."""
    out = []
    for row in text.splitlines():
        if row.startswith("| ") and not re.match(r"\|\s*-", row):
            out += [name.strip('"') for name in re.findall(r"`([^`]+)`", row.split("|")[1])]
    return out


def documented(name: str, text: str = DOC) -> bool:
    return f"`{name}`" in text or f'"{name}"' in text


# ---------------------------------------------------------------------- the code
def code_commands() -> dict[str, set[str]]:
    """Each command of the CLI (`spec check` for a sub-command) and the flags it takes."""
    out: dict[str, set[str]] = {}

    def walk(cmd: Any, path: tuple[str, ...]) -> None:
        if hasattr(cmd, "commands"):
            for name, sub in cmd.commands.items():
                walk(sub, (*path, name))
            return
        out[" ".join(path)] = {flag for p in cmd.params if p.param_type_name == "option"
                               for flag in (*p.opts, *p.secondary_opts)}

    walk(typer.main.get_command(app), ())
    return out


def code_routes() -> set[str]:
    """The HTTP paths the service registers (stream/app.py `_pages`), recorded by a stand-in app."""
    from missionwatch.stream.app import _pages

    paths: set[str] = set()

    class Pages:
        def page(self, path: str) -> Any:
            paths.add(path)
            return lambda fn: fn

    _pages(Pages(), None, None)  # type: ignore[arg-type]
    return paths


def out_records(registry: SpecRegistry, keys: dict[str, Signer], monitor: Monitor) -> dict[str, set[str]]:
    """The fields of every out record kind, from a run of the core: a registered mission whose
    protected proxy goes over its cohort budget (an escalation and a strategy receipt with an
    `integrity` section), then a review that pauses it and one that resumes it (control signals)."""
    gate, reviewer = keys["gate"], keys["reviewer"]
    feed = [gate.sign({"schema": records.SCHEMA_MISSION, "mission_id": "m-1", "spec": "retention",
                       "started_at": stamp(0)})]
    budget = registry.get("retention").cohorts.max_cohorts  # type: ignore[union-attr]
    feed += [gate.sign(action(i, cohort={"age_band": f"band-{i}"})) for i in range(budget + 1)]
    for i, (decision, names) in enumerate((("pause", None), ("resume", "rv-0"))):
        feed.append(reviewer.sign({"schema": records.SCHEMA_REVIEW, "review_id": f"rv-{i}", "mission_id": "m-1",
                                   "escalation_id": names, "reviewer": "user:lee", "decision": decision,
                                   "occurred_at": stamp(3600 + i)}))
    fields: dict[str, set[str]] = {}
    for rec in feed:
        step = monitor.feed(rec)
        assert not step.rejected, step.rejected
        for out in step.out:
            fields.setdefault(out["schema"], set()).update(out)
    # a mission whose spec asks two reviewers to resume it: the first approval's receipt
    paused_awaiting_a_second_reviewer(monitor, gate, "m-2", "esc-2")
    step = monitor.feed(reviewer.sign({"schema": records.SCHEMA_REVIEW, "review_id": "rv-2a", "mission_id": "m-2",
                                       "escalation_id": "esc-2", "reviewer": "user:lee", "decision": "resume",
                                       "occurred_at": stamp(3600)}))
    assert not step.rejected, step.rejected
    for out in step.out:
        fields[out["schema"]].update(out)
    assert "integrity" in fields[records.SCHEMA_STRATEGY] and "resume_approvals" in fields[records.SCHEMA_STRATEGY]
    return fields


# --------------------------------------------------------------------- the tests
def test_record_kinds() -> None:
    schemas = {v for k, v in vars(records).items() if k.startswith("SCHEMA_")}
    assert set(re.findall(r"missionwatch/[a-z_]+@\d+", DOC)) == schemas
    for schema in schemas:
        section(f"`{schema}`")


def test_in_record_fields() -> None:
    for schema, model in records.IN_SCHEMAS.items():
        fields = {f.alias or name for name, f in model.model_fields.items()}
        assert set(first_cells(section(f"`{schema}`"))) == fields, schema


def test_out_record_fields(registry: SpecRegistry, keys: dict[str, Signer], monitor: Monitor) -> None:
    fields = out_records(registry, keys, monitor)
    assert set(fields) == set(records.OUT_SCHEMAS) | {records.SCHEMA_CHECKPOINT}
    for schema, names in fields.items():
        assert set(first_cells(section(f"`{schema}`"))) == names, schema


def test_closed_value_sets() -> None:
    for values, where in ((records.Decision, "`missionwatch/action@1`"),
                          (records.ReviewDecision, "`missionwatch/review@1`"),
                          (RiskVerdict, "`missionwatch/strategy@1`"), (Verdict, "`missionwatch/strategy@1`"),
                          (MissionStateName, "`missionwatch/control@1`")):
        text = section(where)
        for value in get_args(values):
            assert documented(value, text), (value, where)


def test_rejection_codes() -> None:
    assert sorted(first_cells(section("Rejection codes"))) == sorted(get_args(RejectionCode))


def test_escalation_codes() -> None:
    assert sorted(first_cells(section("Escalation codes"))) == sorted(get_args(EscalationCode))


def test_commands_and_flags() -> None:
    commands = code_commands()
    headings = re.findall(r"^###\s+[\d.]+\s+`missionwatch ([a-z][a-z ]*)`\s*$", DOC, re.M)
    assert sorted(headings) == sorted(commands)
    every = set().union(*commands.values()) | {"--help"}
    assert set(FLAG.findall(DOC)) <= every, set(FLAG.findall(DOC)) - every
    for name, flags in commands.items():
        text = section(f"`missionwatch {name}`")
        named = set(FLAG.findall(text))
        assert named <= flags | {"--help"}, (name, named - flags)
        tabled = {f for cell in first_cells(text) for f in FLAG.findall(cell)}
        assert tabled == flags, (name, flags ^ tabled)


def test_verify_json_answer() -> None:
    text = section("`missionwatch verify`")
    for key in VerifyReport(records=0).to_json():
        assert f'"{key}"' in text, key


def test_topics() -> None:
    assert set(re.findall(r"`(missionwatch\.[a-z]+)`", DOC)) == set(records.TOPICS)
    assert set(first_cells(section("4.1 Topics"))) == set(records.TOPICS)


def test_limits_and_key_scope() -> None:
    assert set(first_cells(section("Admission limits"))) == set(Limits.model_fields)
    text = section("Review rules")
    for f in dataclasses.fields(KeyScope):
        assert documented(f.name, text), f.name


def console_routes() -> dict[str, set[str]]:
    """The risk console's paths (console/web.py), by method."""
    from missionwatch.console.review import Desk
    from missionwatch.console.web import Console, console_routes

    out: dict[str, set[str]] = {}
    for r in console_routes(Console(source=None, desk=Desk(), publish=None)):
        out.setdefault(r.method, set()).add(r.path)  # type: ignore[attr-defined]
    return out


def test_http_paths() -> None:
    routes, console = code_routes(), console_routes()
    assert set(re.findall(r"`GET (/[^`\s]*)`", DOC)) == routes | console["GET"]
    assert {p for cell in first_cells(section("HTTP API")) for p in re.findall(r"GET (\S+)", cell)} == routes
    cells = first_cells(section("Risk console"))
    for method, paths in console.items():
        assert {p for cell in cells for p in re.findall(rf"{method} (\S+)", cell)} == paths, method


@pytest.fixture
def stream(registry: SpecRegistry, keys: dict[str, Signer]) -> Any:
    """A stream core holding partition 0, fed a mission, an action, a message that is not JSON
    and a batch with one bad item; returns (core, rejected rows)."""
    from missionwatch.stream.core import REJECTED, StreamCore

    core = StreamCore(lambda: Monitor(registry, signer=keys["monitor"], allow_unsigned=True))
    core.assign([0])
    core.activate(0)
    batch = {"schema": records.SCHEMA_BATCH, "batch_id": "b-1", "items": [{**action(1), "decision": "maybe"}]}
    messages = [{"schema": records.SCHEMA_MISSION, "mission_id": "m-1", "started_at": stamp(0)}, action(0)]
    rows = []
    for offset, message in enumerate([*(line(m) for m in messages), "{not json", line(batch)]):
        for pub in core.process(0, offset, message.encode()):
            if pub.topic == REJECTED:
                rows.append(json.loads(pub.value))
    assert len(rows) == 2 and "item" in rows[1]
    return core, rows


def test_rejected_rows(stream: Any, registry: SpecRegistry, keys: dict[str, Signer]) -> None:
    _, topic_rows = stream
    replayed = replay_lines(Monitor(registry, signer=keys["monitor"], allow_unsigned=True),
                            ["{not json", line({"schema": records.SCHEMA_BATCH, "batch_id": "b", "items": [[]]})])
    assert {"item", "line"} <= {k for r in replayed.rejected for k in r}
    fields = {k for r in topic_rows + replayed.rejected for k in r}
    assert set(first_cells(section("Rejected rows"))) == fields


def test_http_bodies(stream: Any) -> None:
    from missionwatch.stream.http import Health, healthz, metrics_text

    core, _ = stream
    text = section("HTTP API")
    status, ledger = core.status("m-1"), core.ledger("m-1")
    for key in (*status, *ledger, *ledger["cells"][0]):
        assert f'"{key}"' in text, key
    answers = [healthz(SimpleNamespace(), core, Health(agent_running=True)),
               healthz(SimpleNamespace(), core, Health(agent_running=True, publish_failing="timeout")),
               healthz(SimpleNamespace(), core, Health(agent_running=False)),
               healthz(SimpleNamespace(should_stop=True), core, Health(agent_running=True))]
    assert [body["status"] for body, _ in answers] == ["ok", "degraded", "down", "stopping"]
    for body, code in answers:
        assert f"| `{body['status']}` | {code} |" in text, body["status"]
        for key in body:
            assert f'"{key}"' in text, key
    exposition = asyncio.run(metrics_text(SimpleNamespace(), core))
    families = set(re.findall(r"^# TYPE (\S+) ", exposition, re.M))
    samples = {ln.split("{")[0].split(" ")[0] for ln in exposition.splitlines() if ln and not ln.startswith("#")}
    for name in families:
        assert f"`{name}`" in text, name
    assert set(re.findall(r"missionwatch_[a-z_]+", DOC)) <= families | samples
