"""What may enter the monitor, and why not: the limits every in message is held to.

Each limit is a field of `Limits` (a frozen settings model with a safe default)
and has a rejection code of its own:

- `message_too_large`: the message is longer than `max_message_bytes`, or one
  record (or batch item) longer than `max_record_bytes` once written out;
- `too_deep`: arrays and objects nested deeper than `max_depth`;
- `duplicate_key`: an object names one key twice (strict JSON: a first-wins
  parser elsewhere would read another record than the one signed);
- `number_out_of_range`: an integer beyond +-(2**53 - 1), what JSON interoperates
  on; a number written with more than `max_number_chars` characters; a number
  that is not finite (NaN, Infinity, or one that overflows a float); or a number
  whose magnitude exceeds `max_abs_number`, so no detector can overflow when it
  squares or sums it;
- `string_too_long`: a string or key longer than `max_string_chars`;
- `too_many_items`: a batch envelope with more than `max_batch_items` items.

`loads_strict` parses JSON text under these limits; `check_value` checks an
already-parsed value (a dict handed to `Monitor.feed`, a batch item).
A rejection keeps only a bounded excerpt of what it refused (`excerpt`).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from .canonical import make_loader
from .codes import RejectionCode, reject_reason

__all__ = ["DEFAULT_LIMITS", "LimitExceeded", "Limits", "check_value", "excerpt", "loads_strict", "unique_object"]

MAX_SAFE_INT = 2**53 - 1


class Limits(BaseModel):
    """Admission limits. Every field is also a `missionwatch run` / `replay` setting."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    max_message_bytes: int = Field(8 * 1024 * 1024, ge=1024)
    """Longest message (one record or one batch envelope), in bytes of UTF-8."""
    max_record_bytes: int = Field(64 * 1024, ge=256)
    """Longest single record or batch item, in bytes of its canonical JSON."""
    max_depth: int = Field(32, ge=4, le=1000)
    """Deepest nesting of arrays and objects (a batch envelope counts as one level)."""
    max_string_chars: int = Field(8192, ge=64)
    """Longest string or object key, in characters."""
    max_number_chars: int = Field(40, ge=17, le=4000)
    """Longest number literal, in characters (Python refuses integers past 4,300 digits)."""
    max_abs_number: float = Field(1e15, gt=0)
    """Largest magnitude of any number; detectors square and sum numbers, so this keeps
    every sum of squares finite."""
    max_batch_items: int = Field(10_000, ge=1)
    """Most items in one batch envelope."""
    excerpt_chars: int = Field(2048, ge=64)
    """How much of a rejected message or item a rejection keeps (rejected.jsonl, the
    rejected topic)."""


DEFAULT_LIMITS = Limits()


class LimitExceeded(ValueError):
    """A message broke a limit: `code` names which, `reason` says so in a sentence."""

    def __init__(self, code: RejectionCode, detail: Any = "") -> None:
        super().__init__(detail)
        self.code: RejectionCode = code
        self.reason = reject_reason(code, detail)


def excerpt(text: str | bytes, limit: int) -> str:
    """At most `limit` characters of `text`; a longer one is cut and says how long it was."""
    if isinstance(text, bytes | bytearray):
        size = len(text)
        text = bytes(text[: limit * 4]).decode("utf-8", "replace")
    else:
        size = -1
    if len(text) <= limit:
        return text
    total = size if size >= 0 else len(text.encode("utf-8", "replace"))
    return f"{text[:limit]}... [cut: {total:,} bytes in all]"


def unique_object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """A JSON object from its key/value pairs (`object_pairs_hook`); a key given twice raises
    `LimitExceeded('duplicate_key')`: JSON parsers disagree on which of the two counts."""
    d = dict(pairs)
    if len(d) != len(pairs):
        seen: set[str] = set()
        for k, _ in pairs:
            if k in seen:
                raise LimitExceeded("duplicate_key", f"key {_short(k)} appears more than once in one object")
            seen.add(k)
    return d


def _short(s: str, n: int = 60) -> str:
    return repr(s if len(s) <= n else s[:n] + "...")


def _constant(text: str) -> Any:
    raise LimitExceeded("number_out_of_range", f"{text} is not a JSON number")


@functools.lru_cache(maxsize=16)
def _loader(max_number_chars: int) -> Callable[[str], Any]:
    def number(text: str) -> None:
        if len(text) > max_number_chars:
            raise LimitExceeded("number_out_of_range",
                                f"a number is written with {len(text):,} characters, more than the "
                                f"{max_number_chars} allowed")

    return make_loader(unique_object, number, _constant)


def loads_strict(text: str, limits: Limits = DEFAULT_LIMITS) -> Any:
    """Parse JSON text for the monitor: duplicate keys, NaN, Infinity and over-long number
    literals are refused while parsing, then the value is checked against `limits`
    (`check_value`). The result is what `canonical.loads_canonical` returns (a top-level
    dict marked for the fast canonical path where that is exact). Raises `LimitExceeded`,
    or json.JSONDecodeError for text that is not JSON."""
    try:
        value = _loader(limits.max_number_chars)(text)
    except RecursionError:
        raise LimitExceeded("too_deep", f"arrays and objects nest deeper than {limits.max_depth} levels") from None
    check_value(value, limits)
    return value


def check_value(value: Any, limits: Limits = DEFAULT_LIMITS, depth: int = 0) -> None:
    """Raise `LimitExceeded` if `value` breaks a limit on depth, strings or numbers."""
    stack: list[tuple[Any, int]] = [(value, depth)]
    while stack:
        v, d = stack.pop()
        t = type(v)
        if t is str:
            if len(v) > limits.max_string_chars:
                raise LimitExceeded("string_too_long", f"a string of {len(v):,} characters "
                                    f"(starting {_short(v, 30)}) is longer than the {limits.max_string_chars:,} allowed")
        elif t is int:
            if not -MAX_SAFE_INT <= v <= MAX_SAFE_INT:
                raise LimitExceeded("number_out_of_range", f"the integer {_number_text(v)} is beyond "
                                    "+-(2**53 - 1), the integers JSON interoperates on")
            if abs(v) > limits.max_abs_number:
                raise LimitExceeded("number_out_of_range", f"{v} is larger in magnitude than the "
                                    f"{limits.max_abs_number:g} allowed")
        elif t is float:
            if not math.isfinite(v):
                raise LimitExceeded("number_out_of_range", f"{v} is not a finite number")
            if abs(v) > limits.max_abs_number:
                raise LimitExceeded("number_out_of_range", f"{v!r} is larger in magnitude than the "
                                    f"{limits.max_abs_number:g} allowed")
        elif isinstance(v, dict | list):
            if d >= limits.max_depth:
                raise LimitExceeded("too_deep", f"arrays and objects nest deeper than {limits.max_depth} levels")
            if isinstance(v, dict):
                for k, x in v.items():
                    if type(k) is str and len(k) > limits.max_string_chars:
                        raise LimitExceeded("string_too_long", f"a key of {len(k):,} characters is longer "
                                            f"than the {limits.max_string_chars:,} allowed")
                    stack.append((x, d + 1))
            else:
                stack.extend((x, d + 1) for x in v)


def _number_text(v: int) -> str:
    if abs(v) < 10**40:
        return str(v)
    return f"of about {int(v.bit_length() * 0.30103) + 1:,} digits"
