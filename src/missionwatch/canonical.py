"""Canonical bytes (RFC 8785, JSON Canonicalization Scheme) and record hashes.

`canonical_bytes` is the one function every signature and hash in missionwatch
goes through. It has a fast path built on the standard library's C JSON
encoder, which produces exactly the RFC 8785 bytes for the values receipts are
made of (strings, booleans, null, safe integers, and floats whose shortest
round-trip form is positional). Anything else (exponent-form floats, integers
past 2**53, keys outside the Basic Multilingual Plane) takes the reference
implementation, the `rfc8785` package. A property test proves both paths give
identical bytes on arbitrary JSON values.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable
from typing import Any, NoReturn

import rfc8785

__all__ = [
    "CanonicalizationError",
    "canonical_bytes",
    "loads_canonical",
    "make_loader",
    "record_hash",
    "strip_envelope",
]

_MAX_SAFE_INT = 2**53 - 1
_encode = json.JSONEncoder(
    ensure_ascii=False, sort_keys=True, separators=(",", ":"), allow_nan=False
).encode


class CanonicalizationError(ValueError):
    """The value has no RFC 8785 form (NaN, infinity, a lone surrogate, an unsafe integer)."""


class _NeedsReference(Exception):
    pass


def _prepare(value: Any, floats: list[str]) -> Any:
    """Return `value` with integral floats turned into ints, and floats whose Python and RFC 8785
    forms differ (exponent form, integral past 2**53) into tokens, their RFC 8785 text appended
    to `floats`; or raise _NeedsReference."""
    t = type(value)
    if t is str or t is bool or value is None:
        return value
    if t is int:
        if -_MAX_SAFE_INT <= value <= _MAX_SAFE_INT:
            return value
        raise _NeedsReference
    if t is float:
        if value != value or value in (float("inf"), float("-inf")):
            _refuse(floats, "NaN and infinity have no JSON form")
        if value.is_integer():
            if -_MAX_SAFE_INT <= value <= _MAX_SAFE_INT:
                return int(value)
            return _token(value, floats)
        a = abs(value)
        if 1e-4 <= a < 1e16:
            # Python's repr and ECMAScript's Number::toString agree here:
            # shortest round-trip digits, positional notation.
            return value
        return _token(value, floats)
    if t is dict:
        out = {}
        for k, v in value.items():
            if type(k) is not str:
                _refuse(floats, "object keys must be strings")
            if not k.isascii() and any(ord(c) > 0xFFFF for c in k):
                raise _NeedsReference  # RFC 8785 sorts by UTF-16 code units
            out[k] = _prepare(v, floats)
        return out
    if t is list or t is tuple:
        return [_prepare(v, floats) for v in value]
    _refuse(floats, f"{t.__name__} is not a JSON value")


def _refuse(floats: list[str], reason: str) -> NoReturn:
    """Refuse a value as the walk always did; once a float was tokenized, the walk used to have
    handed the value to the reference already, whose own error then stands."""
    if floats:
        raise _NeedsReference
    raise CanonicalizationError(reason)


def _token(value: float, floats: list[str]) -> str:
    """A placeholder for a float's RFC 8785 text, put in by `_put_floats`: a string the encoder
    writes as '"\\u0000<i>\\u0000"'."""
    floats.append(es_number(value))
    return f"\x00{len(floats) - 1}\x00"


_TOKEN = re.compile(r'"\\u0000(\d+)\\u0000"')


def _put_floats(text: str, floats: list[str]) -> str:
    """Replace the tokens of `_token` in the encoder's `text`; any other string that starts with
    a NUL character makes them ambiguous (then the reference encodes the value)."""
    if text.count('"\\u0000') != len(floats):
        raise _NeedsReference
    return _TOKEN.sub(lambda m: floats[int(m[1])], text)


def es_number(f: float) -> str:
    """A finite float as RFC 8785 writes it (ECMAScript's Number::toString): the algorithm of the
    reference implementation (the `rfc8785` package, after Rundgren's), step for step."""
    if f == 0:
        return "0"
    if f < 0:
        return "-" + es_number(-f)
    text, exponent_str, exponent = str(f), "", 0
    q = text.find("e")
    if q > 0:
        exponent_str = text[q:]
        if exponent_str[2:3] == "0":  # no leading zero in the exponent
            exponent_str = exponent_str[:2] + exponent_str[3:]
        text = text[:q]
        exponent = int(exponent_str[1:])
    first, dot, last = text, "", ""
    q = text.find(".")
    if q > 0:
        dot, first, last = ".", text[:q], text[q + 1:]
    if last == "0":
        dot = last = ""
    if 0 < exponent < 21:  # integers in full, up to 21 digits
        first, last, dot, exponent_str = first + last, "", "", ""
        first += "0" * max(exponent - len(first) + 1, 0)
    elif -7 < exponent < 0:  # small numbers as 0.000ddd down to 1e-6
        last, first, dot, exponent_str = "0" * max(-exponent - 1, 0) + first + last, "0", ".", ""
    return f"{first}{dot}{last}{exponent_str}"


class _Plain(dict):  # type: ignore[type-arg]
    """A dict parsed by `loads_canonical` whose values the C encoder already writes as RFC 8785."""

    __slots__ = ()


def _parse_float(text: str) -> float | int:
    value = float(text)
    if value.is_integer():
        if -_MAX_SAFE_INT <= value <= _MAX_SAFE_INT:
            return int(value)  # RFC 8785 writes 10.0 as 10; so does an int
        raise _NeedsReference
    a = abs(value)
    if not (1e-4 <= a < 1e16) or value != value:
        raise _NeedsReference
    return value


def _parse_int(text: str) -> int:
    value = int(text)
    if not -_MAX_SAFE_INT <= value <= _MAX_SAFE_INT:
        raise _NeedsReference
    return value


def _refuse_constant(text: str) -> Any:
    raise _NeedsReference


Hook = Callable[[str], None]


def make_loader(pairs_hook: Callable[[list[tuple[str, Any]]], dict[str, Any]] | None = None,
                number_hook: Hook | None = None,
                constant_hook: Callable[[str], Any] | None = None) -> Callable[[str], Any]:
    """A `loads_canonical` whose decoders build objects with `pairs_hook` (e.g. one refusing
    duplicate keys), show every number literal to `number_hook` before converting it, and
    hand NaN and Infinity to `constant_hook` (default: they parse as floats)."""

    def shown(convert: Callable[[str], Any]) -> Callable[[str], Any]:
        if number_hook is None:
            return convert

        def parse(text: str) -> Any:
            number_hook(text)
            return convert(text)
        return parse

    fast_float, fast_int, slow_float, slow_int = (shown(c) for c in (_parse_float, _parse_int, float, int))

    fast = json.JSONDecoder(parse_float=fast_float, parse_int=fast_int, object_pairs_hook=pairs_hook,
                            parse_constant=_refuse_constant)
    slow = json.JSONDecoder(parse_float=slow_float, parse_int=slow_int, object_pairs_hook=pairs_hook,
                            parse_constant=constant_hook)

    def load(text: str) -> Any:
        if text.isascii() and not ("\\u" in text and _SURROGATE_ESCAPE.search(text)):
            try:
                value = fast.decode(text)
            except _NeedsReference:
                return slow.decode(text)
            if type(value) is dict:
                return _Plain(value)
            return value
        return slow.decode(text)

    return load


# An escaped UTF-16 surrogate: a character outside the BMP (keys then sort by
# UTF-16 code units, not code points) or a lone surrogate (no RFC 8785 form).
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")

_default_loader = make_loader()


def loads_canonical(text: str) -> Any:
    """json.loads for records that will be canonicalized: when every number in an ASCII
    text is one whose Python and RFC 8785 forms agree, and no escape encodes a UTF-16
    surrogate, the top-level dict comes back marked so `canonical_bytes` can skip its walk.
    Integral floats become ints (the same JSON number). Otherwise this is plain json.loads.
    `make_loader` builds one with stricter hooks."""
    return _default_loader(text)


def canonical_bytes(value: Any) -> bytes:
    """RFC 8785 canonical UTF-8 bytes of a JSON value."""
    if type(value) is _Plain:
        return _encode(value).encode("utf-8")
    floats: list[str] = []
    try:
        text = _encode(_prepare(value, floats))
        return (_put_floats(text, floats) if floats else text).encode("utf-8")
    except _NeedsReference:
        pass
    except UnicodeEncodeError as exc:
        if not floats:  # else: as before, the reference's own error
            raise CanonicalizationError("string holds a lone surrogate") from exc
    try:
        return bytes(rfc8785.dumps(value))
    except CanonicalizationError:
        raise
    except Exception as exc:  # the reference library's own error types
        raise CanonicalizationError(str(exc) or type(exc).__name__) from exc


def strip_envelope(record: dict[str, Any]) -> dict[str, Any]:
    """The record without its `signature` and `hash` fields: what is hashed and signed."""
    if "signature" not in record and "hash" not in record:
        return record
    body = {k: v for k, v in record.items() if k != "signature" and k != "hash"}
    return _Plain(body) if type(record) is _Plain else body


def record_hash(record: dict[str, Any]) -> str:
    """`sha256:<hex>` of the canonical bytes of the record less `signature` and `hash`."""
    return "sha256:" + hashlib.sha256(canonical_bytes(strip_envelope(record))).hexdigest()
