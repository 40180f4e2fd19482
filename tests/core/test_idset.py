"""The compact id table: exact membership against a dict, through growth, for any ids."""

from __future__ import annotations

import hashlib

from hypothesis import given, settings
from hypothesis import strategies as st

from missionwatch.core.idset import IdTable, content_digest


def _h(i: int) -> str:
    return "sha256:" + hashlib.sha256(str(i).encode()).hexdigest()


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.sampled_from("rov"), st.text(max_size=12), st.integers(0, 7)), max_size=300))
def test_behaves_as_a_dict_keeping_the_first_value(entries: list[tuple[str, str, int]]) -> None:
    table = IdTable(capacity=4)
    want: dict[tuple[str, str], tuple[int, int]] = {}
    for n, (kind, ident, flags) in enumerate(entries):
        digest = content_digest(_h(n))
        table.put(kind, ident, digest, flags)
        want.setdefault((kind, ident), (digest, flags))
    assert len(table) == len(want)
    for (kind, ident), value in want.items():
        assert table.get(kind, ident) == value
    assert table.get("r", "never-put\x00") is None or ("r", "never-put\x00") in want


def test_memory_per_id_is_a_few_dozen_bytes() -> None:
    table = IdTable()
    for i in range(100_000):
        table.put("r", f"r-2026-05-07-{i:06d}", content_digest(_h(i)), i % 4)
    assert len(table) == 100_000
    assert table.nbytes <= 100_000 * 64  # 16 bytes a slot, load between 1/4 and 1/2
    assert table.get("r", "r-2026-05-07-000042") == (content_digest(_h(42)), 2)
    assert table.get("o", "r-2026-05-07-000042") is None
