"""Pydantic models of the records in CONTRACT.md section 1, and their parsing.

In records keep unknown extra fields (`extra="allow"`): they are carried, hashed
and signed with the record, never an error. Timestamps are RFC 3339 strings;
each model exposes the parsed UTC instant as `t` (seconds since the epoch).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

__all__ = [
    "IN_SCHEMAS",
    "OUT_SCHEMAS",
    "TOPICS",
    "ActionRecord",
    "BatchEnvelope",
    "InRecord",
    "MissionRecord",
    "OutcomeRecord",
    "ReviewRecord",
    "Signature",
    "describe_validation_error",
    "format_time",
    "parse_time",
]

SCHEMA_MISSION = "missionwatch/mission@1"
SCHEMA_ACTION = "missionwatch/action@1"
SCHEMA_OUTCOME = "missionwatch/outcome@1"
SCHEMA_REVIEW = "missionwatch/review@1"
SCHEMA_BATCH = "missionwatch/batch@1"
SCHEMA_STRATEGY = "missionwatch/strategy@1"
SCHEMA_ESCALATION = "missionwatch/escalation@1"
SCHEMA_CONTROL = "missionwatch/control@1"
SCHEMA_CHECKPOINT = "missionwatch/checkpoint@1"
"""ext: a signed checkpoint of a mission's transparency log (CONTRACT 1.9): on missionwatch.out,
outside the mission's chain (no seq)."""

OUT_SCHEMAS = frozenset({SCHEMA_STRATEGY, SCHEMA_ESCALATION, SCHEMA_CONTROL})

# the Kafka topics (CONTRACT 4)
TOPIC_IN = "missionwatch.in"
TOPIC_OUT = "missionwatch.out"
TOPIC_CONTROL = "missionwatch.control"
TOPIC_REJECTED = "missionwatch.rejected"
TOPICS = (TOPIC_IN, TOPIC_OUT, TOPIC_CONTROL, TOPIC_REJECTED)

_RFC3339 = re.compile(
    r"^\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d{1,9})?([Zz]|[+-]\d{2}:\d{2})$"
)

Decision = Literal["allowed", "denied", "escalated", "revoked", "overridden"]
ReviewDecision = Literal["acknowledge", "resume", "pause", "terminate"]
Id = Annotated[str, Field(min_length=1, max_length=256)]


def parse_time(text: str) -> datetime:
    """Parse an RFC 3339 timestamp into an aware UTC datetime; raise ValueError otherwise."""
    if not isinstance(text, str) or not _RFC3339.match(text):
        raise ValueError(
            "must be an RFC 3339 timestamp such as 2026-04-02T10:15:00Z"
        )
    if len(text) == 20 and text[19] == "Z" and text[10] == "T":  # the common form, fast
        try:
            return datetime.fromisoformat(text)
        except ValueError as exc:
            raise ValueError(f"is not a real date and time ({exc})") from None
    body = text.upper()
    if body.endswith("Z"):
        body = body[:-1] + "+00:00"
    frac = re.search(r"\.(\d+)", body)
    if frac and len(frac.group(1)) > 6:  # datetime keeps microseconds
        body = body.replace(frac.group(0), "." + frac.group(1)[:6], 1)
    try:
        return datetime.fromisoformat(body).astimezone(UTC)
    except ValueError as exc:
        raise ValueError(f"is not a real date and time ({exc})") from None


def format_time(t: float) -> str:
    """Event time (epoch seconds) as RFC 3339 UTC, with microseconds only when non-zero."""
    dt = datetime.fromtimestamp(t, UTC)
    if dt.microsecond:
        return dt.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return dt.strftime("%Y-%m-%dT%H:%M:%SZ")


class Signature(BaseModel):
    model_config = ConfigDict(extra="allow", frozen=True)
    key_id: str
    alg: str
    value: str


class _In(BaseModel):
    model_config = ConfigDict(extra="allow", frozen=True, strict=True)
    schema_: str = Field(alias="schema")
    mission_id: Id
    signature: Signature | None = None


def _time_field(value: Any) -> float:
    """`parse_time(value)` as epoch seconds; the latest distinct strings are remembered (traffic
    dates many records to the same second: each string is parsed once)."""
    t = _TIMES.get(value) if type(value) is str else None
    if t is None:
        t = parse_time(value).timestamp()
        if len(_TIMES) >= 4096:
            _TIMES.clear()
        _TIMES[value] = t
    return t


_TIMES: dict[str, float] = {}
"""`_time_field`'s memory: timestamp text -> epoch seconds, at most 4,096 (then it starts again)."""


class _Occurred(_In):
    """An in record stamped with `occurred_at`, its event time."""

    occurred_at: float

    @field_validator("occurred_at", mode="before")
    @classmethod
    def _occurred(cls, v: Any) -> float:
        return _time_field(v)

    @property
    def t(self) -> float:
        return self.occurred_at


class MissionRecord(_In):
    spec: Id = "default"
    objective: str = ""
    proxy_metric: str = ""
    constraints: list[str] = []
    owner: str | None = None
    human_delegate: str | None = None
    started_at: float

    @field_validator("started_at", mode="before")
    @classmethod
    def _t(cls, v: Any) -> float:
        return _time_field(v)

    @property
    def t(self) -> float:
        return self.started_at


class Subject(BaseModel):
    model_config = ConfigDict(extra="allow", frozen=True, strict=True)
    id: Id
    cohort: dict[str, str] | None = None


class ActionRecord(_Occurred):
    receipt_id: Id
    agent_id: str
    action_type: Id
    decision: Decision
    subject: Subject
    attributes: dict[str, Any] = {}
    policy_version: str | None = None


class OutcomeRecord(_Occurred):
    outcome_id: Id
    subject: Subject
    outcome_type: Id
    value: float = 1.0
    follows: str | None = None
    """Extension: the receipt_id of the action this outcome follows, when the gateway knows it."""
    @field_validator("value", mode="before")
    @classmethod
    def _v(cls, v: Any) -> float:
        if isinstance(v, bool) or not isinstance(v, int | float):
            raise ValueError("must be a number")
        if v != v or v in (float("inf"), float("-inf")):
            raise ValueError("must be a finite number")
        return float(v)


class ReviewRecord(_Occurred):
    review_id: Id
    escalation_id: str | None = None
    reviewer: Id
    decision: ReviewDecision
    note: str = ""


class BatchEnvelope(BaseModel):
    model_config = ConfigDict(extra="allow", frozen=True, strict=True)
    schema_: str = Field(alias="schema")
    batch_id: Id
    items: list[Any]
    signature: Signature | None = None


InRecord = MissionRecord | ActionRecord | OutcomeRecord | ReviewRecord

IN_SCHEMAS: dict[str, type[BaseModel]] = {
    SCHEMA_MISSION: MissionRecord,
    SCHEMA_ACTION: ActionRecord,
    SCHEMA_OUTCOME: OutcomeRecord,
    SCHEMA_REVIEW: ReviewRecord,
    SCHEMA_BATCH: BatchEnvelope,
}


def describe_validation_error(schema: str, exc: ValidationError) -> str:
    """One readable sentence per problem: which field, and what is wrong with it."""
    parts = []
    for err in exc.errors(include_url=False):
        loc = ".".join(str(p) for p in err["loc"]) or "record"
        msg = str(err["msg"])
        if err["type"] == "missing":
            parts.append(f"field {loc} is required")
        elif err["type"] == "value_error":
            parts.append(f"field {loc} {msg.removeprefix('Value error, ')}")
        elif err["type"] == "literal_error":
            parts.append(f"field {loc} {msg[0].lower()}{msg[1:]}, got {err['input']!r}")
        else:
            parts.append(f"field {loc}: {msg[0].lower()}{msg[1:]}")
    return f"{schema}: " + "; ".join(parts)
