"""Canonical bytes: RFC 8785 examples, and the fast path equal to the reference."""

from __future__ import annotations

import json
import math

import pytest
import rfc8785
from hypothesis import example, given, settings
from hypothesis import strategies as st

from missionwatch.canonical import (
    CanonicalizationError,
    canonical_bytes,
    loads_canonical,
    record_hash,
)


def test_rfc8785_section_3_2_2_sample() -> None:
    # The example object of RFC 8785 section 3.2.2 and its canonical form (3.2.3).
    text = ('{"numbers": [333333333.33333329, 1E30, 4.50, 2e-3, 0.000000000000000000000000001],'
            '"string": "\\u20ac$\\u000F\\u000aA\'\\u0042\\u0022\\u005c\\\\\\"\\/",'
            '"literals": [null, true, false]}')
    expected = ('{"literals":[null,true,false],"numbers":[333333333.3333333,1e+30,4.5,0.002,1e-27],'
                '"string":"€$\\u000f\\nA\'B\\"\\\\\\\\\\"/"}').encode()
    assert canonical_bytes(json.loads(text)) == expected
    assert canonical_bytes(loads_canonical(text)) == expected


def test_rfc8785_key_order_is_utf16() -> None:
    # RFC 8785 section 3.2.3 sorting example: keys sorted by UTF-16 code units.
    value = {"\u20ac": "Euro Sign", "\r": "Carriage Return", "\ufb33": "Hebrew Letter Dalet With Dagesh",
             "1": "One", "\U0001f600": "Emoji: Grinning Face", "\u0080": "Control",
             "\u00f6": "Latin Small Letter O With Diaeresis"}
    out = canonical_bytes(value).decode()
    order = [k for k in json.loads(out)]
    assert order == ["\r", "1", "\u0080", "\u00f6", "\u20ac", "\U0001f600", "\ufb33"]


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
def test_non_finite_numbers_have_no_form(value: float) -> None:
    with pytest.raises(CanonicalizationError):
        canonical_bytes({"x": value})


def test_lone_surrogate_is_refused() -> None:
    with pytest.raises(CanonicalizationError):
        canonical_bytes({"x": "\ud800"})


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**60), 2**60)
    | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=6), children, max_size=4),
    max_leaves=20,
)


def _reference(value: object) -> bytes | None:
    try:
        return bytes(rfc8785.dumps(value))
    except Exception:
        return None


@settings(max_examples=600, deadline=None)
@given(json_values)
def test_fast_path_equals_reference(value: object) -> None:
    expected = _reference(value)
    try:
        got: bytes | None = canonical_bytes(value)
    except CanonicalizationError:
        got = None
    assert got == expected


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.text(max_size=6), json_values, max_size=5))
@example({"": 9007199254740992.0})  # an integral float past 2**53 (found by hypothesis)
@example({"a": 1e16, "b": 1e-05, "c": 123456789012345.67})
@example({"\ue000": None, "\U00010000": None})  # keys sort by UTF-16 units (found by hypothesis)
@example({"lone": "\ud800"})  # a lone surrogate has no canonical form
def test_parsed_fast_path_equals_reference(value: dict[str, object]) -> None:
    text = json.dumps(value)
    expected = _reference(json.loads(text))
    try:
        got: bytes | None = canonical_bytes(loads_canonical(text))
    except CanonicalizationError:
        got = None
    assert got == expected


def test_hash_ignores_signature_and_hash_fields() -> None:
    rec = {"a": 1, "b": [1.5, "x"]}
    assert record_hash(rec) == record_hash({**rec, "signature": {"v": 1}, "hash": "sha256:00"})
    assert record_hash(rec).startswith("sha256:") and len(record_hash(rec)) == 71
