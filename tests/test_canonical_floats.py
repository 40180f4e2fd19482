"""Floats whose Python and RFC 8785 forms differ (exponent form, integral past 2**53) take the
fast path too, written as the reference writes them; any value the token scheme cannot tell
apart, and every error, is what it was when such a float sent the whole value there."""

from __future__ import annotations

import json
import math
import struct

import rfc8785
from hypothesis import example, given, settings
from hypothesis import strategies as st

from missionwatch.canonical import CanonicalizationError, canonical_bytes, es_number

finite = st.floats(allow_nan=False, allow_infinity=False)
exotic = st.one_of(st.floats(-1e-4, 1e-4), st.floats(1e16, 1e308), st.floats(-1e308, -1e16),
                   st.builds(lambda b: struct.unpack("<d", struct.pack("<Q", b))[0],
                             st.integers(0, 2**64 - 1)).filter(math.isfinite))


def _outcome(fn: object, value: object) -> tuple[str, object]:
    try:
        return "ok", bytes(fn(value))  # type: ignore[operator]
    except Exception as exc:  # the message is what is compared
        return "error", str(exc)


@settings(max_examples=3000, deadline=None)
@given(st.one_of(finite, exotic))
@example(1e-7)
@example(1e21)
@example(1e16)
@example(-2.5e-5)
@example(5e-324)
@example(1.7976931348623157e308)
@example(9007199254740993.0)
def test_es_number_is_the_reference(f: float) -> None:
    assert es_number(f) == rfc8785.dumps(f).decode()


nasty_text = st.one_of(st.text(max_size=5), st.sampled_from(["\x00", "\x000\x00", '"\x00', "\x00x", "\ud800", "\U0001f600"]))
values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**60), 2**60) | finite | exotic | nasty_text
    | st.sampled_from([math.nan, math.inf]),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(nasty_text, children, max_size=4),
    max_leaves=16,
)


class _Reference(Exception):
    pass


def _walk_as_before(value: object) -> object:
    """The fast path's walk before such floats took it: the first of them sends the value whole
    to the reference (as an unsafe integer or a key past the BMP does); an error met first stands."""
    t = type(value)
    if t is str or t is bool or value is None:
        return value
    if t is int:
        if abs(value) <= 2**53 - 1:  # type: ignore[arg-type]
            return value
        raise _Reference
    if t is float:
        assert isinstance(value, float)
        if not math.isfinite(value):
            raise CanonicalizationError("NaN and infinity have no JSON form")
        if value.is_integer():
            if abs(value) <= 2**53 - 1:
                return int(value)
            raise _Reference
        if 1e-4 <= abs(value) < 1e16:
            return value
        raise _Reference
    if t is dict:
        assert isinstance(value, dict)
        out = {}
        for k, v in value.items():
            if any(ord(c) > 0xFFFF for c in k):
                raise _Reference
            out[k] = _walk_as_before(v)
        return out
    assert isinstance(value, list)
    return [_walk_as_before(v) for v in value]


def _as_before(value: object) -> bytes:
    """canonical_bytes as it was: the C encoder on the walked value, else the reference."""
    try:
        text = json.dumps(_walk_as_before(value), ensure_ascii=False, sort_keys=True, separators=(",", ":"))
        try:
            return text.encode("utf-8")
        except UnicodeEncodeError:
            raise CanonicalizationError("string holds a lone surrogate") from None
    except _Reference:
        return bytes(rfc8785.dumps(value))


@settings(max_examples=1500, deadline=None)
@given(values)
@example({"a": 1e-7, "b": "\x000\x00"})
@example({"\x00": 1e30, "x": [1e-9]})
@example({"a": 1e-7, "b": "\ud800"})
@example([1e-9, math.nan])
@example([math.nan, 1e-9])
@example({"a": 1e300, "k": 2**60})
def test_bytes_and_errors_are_as_before(value: object) -> None:
    """The bytes, or the error message, of every value are what they were."""
    assert _outcome(canonical_bytes, value) == _outcome(_as_before, value)


def test_errors_keep_their_words() -> None:
    assert _outcome(canonical_bytes, {"x": math.nan}) == ("error", "NaN and infinity have no JSON form")
    assert _outcome(canonical_bytes, {"x": "\ud800"}) == ("error", "string holds a lone surrogate")
    try:
        canonical_bytes({"a": 1e-7, "b": "\ud800"})
    except CanonicalizationError as exc:
        assert str(exc) == "input contains non-UTF-8 codepoints"
