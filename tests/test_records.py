"""records.py: the time fields' parsing, remembered per string, equals parsing each time."""

from __future__ import annotations

import random

import pytest
from pydantic import ValidationError

from missionwatch import records
from missionwatch.records import ActionRecord, parse_time


def _action(occurred_at: object) -> dict[str, object]:
    return {"schema": "missionwatch/action@1", "receipt_id": "r-1", "mission_id": "m", "agent_id": "a",
            "action_type": "email.send", "decision": "allowed", "subject": {"id": "s"}, "occurred_at": occurred_at}


def test_remembered_times_equal_fresh_parses_and_the_memory_stays_bounded() -> None:
    rng = random.Random(7)
    forms = ["2026-05-01T00:02:30Z", "2026-05-01t00:02:30z", "2026-05-01T02:02:30+02:00",
             "2026-05-01T00:02:30.123456789Z", "2026-05-01T00:02:30.5-07:30"]
    texts = forms + [f"2026-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}T{rng.randint(0, 23):02d}:"
                     f"{rng.randint(0, 59):02d}:{rng.randint(0, 59):02d}Z" for _ in range(6_000)]
    for text in texts + rng.sample(texts, 3_000):  # repeats: from the memory, or parsed again after a clear
        assert ActionRecord.model_validate(_action(text)).occurred_at == parse_time(text).timestamp()
        assert len(records._TIMES) <= 4_096
    assert ActionRecord.model_validate(_action(forms[1])).occurred_at == \
        ActionRecord.model_validate(_action(forms[0])).occurred_at


@pytest.mark.parametrize("bad", ["2026-02-30T00:00:00Z", "yesterday", 1714521750, None])
def test_a_bad_time_is_refused_every_time_and_never_remembered(bad: object) -> None:
    for _ in range(2):
        with pytest.raises(ValidationError):
            ActionRecord.model_validate(_action(bad))
    assert bad not in records._TIMES
