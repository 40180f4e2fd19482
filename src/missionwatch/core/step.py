"""What one message caused: the out records, the rejections, what entered the ledger."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel

from ..admission import Limits, excerpt
from ..codes import RejectionCode, reject_reason
from ..ledger import Cell, Key

__all__ = ["Accepted", "Rejection", "Step", "internal_error", "item_excerpt", "rejection_row"]


@dataclass(frozen=True)
class Rejection:
    code: RejectionCode
    reason: str
    item: int | None = None
    """Index of the item within a batch envelope; None for a whole message."""
    record: str | None = None
    """For an item of a batch: a bounded excerpt of the item (the shell keeps a bounded
    excerpt of the whole message otherwise; see `Monitor.rejection_row`)."""


@dataclass(frozen=True)
class Accepted:
    kind: Literal["mission", "action", "outcome", "review"]
    record: dict[str, Any]
    model: BaseModel
    hash: str
    key_id: str | None
    batch_hash: str | None
    duplicate: bool
    cohort: dict[str, str] | None = None
    """An action's or outcome's cohort as the mission counts it (normalised); None otherwise."""


@dataclass
class Step:
    out: list[dict[str, Any]] = field(default_factory=list)
    """Out records issued, in order, each chained and signed per mission."""
    rejected: list[Rejection] = field(default_factory=list)
    accepted: list[Accepted] = field(default_factory=list)
    missions: set[str] = field(default_factory=set)
    """Missions whose state this message changed: what a writer refreshes from their views."""
    cells: list[tuple[str, float, str, str]] = field(default_factory=list)
    """Open ledger cells (mission_id, bucket_start, dimension, cohort) this message changed;
    their values are `Monitor.ledger_cell(...)`: a writer appends these instead of rebuilding."""
    sealed: list[tuple[str, Key, Cell]] = field(default_factory=list)
    """Ledger cells this message sealed, (mission_id, (bucket_start, dimension, cohort),
    measures): final parts, dropped from the monitor. A cell's value is the sum of its sealed
    parts and its open part (`Monitor.ledger_cell`), if any."""


def internal_error(exc: Exception, item: int | None = None, record: str | None = None) -> Rejection:
    """A rejection for what the core raised on one message: its type and a short message."""
    text = str(exc).splitlines()[0][:200] if str(exc) else ""
    detail = f"{type(exc).__name__}: {text}" if text else type(exc).__name__
    return Rejection("internal_error", reject_reason("internal_error", detail), item, record)


def item_excerpt(item: Any, limits: Limits) -> str:
    """A bounded excerpt of one batch item, as JSON."""
    try:
        text = json.dumps(item, ensure_ascii=False, separators=(",", ":"), allow_nan=True)
    except (TypeError, ValueError, RecursionError):
        text = repr(item)[: limits.excerpt_chars * 2]
    return excerpt(text, limits.excerpt_chars)


def rejection_row(r: Rejection, message: str | bytes, excerpt_chars: int) -> dict[str, Any]:
    """What rejected.jsonl and the rejected topic keep of a rejection: code, reason, the item
    index, and a bounded excerpt of the offending item or message."""
    row: dict[str, Any] = {"code": r.code, "reason": r.reason}
    if r.item is not None:
        row["item"] = r.item
    if r.record is not None:
        row["record"] = r.record
    else:
        if isinstance(message, str):
            message = message.rstrip("\r\n")
        elif isinstance(message, bytes | bytearray):
            message = bytes(message).rstrip(b"\r\n")
        row["record"] = excerpt(message, excerpt_chars)
    return row
