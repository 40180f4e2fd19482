"""Each Step says what changed, so a writer can append while streaming: the cells it names,
read as they stand after the step, rebuild the whole ledger."""

from __future__ import annotations

from missionwatch.monitor import Monitor
from tests.conftest import action, line
from tests.hostile.test_core import gap_campaign, registration


def test_cells_named_by_steps_rebuild_the_ledger(registry, keys, keyring) -> None:
    gate = keys["gate"]
    m = Monitor(registry, signer=keys["monitor"], keyring=keyring)
    outcomes = [line(gate.sign({"schema": "missionwatch/outcome@1", "outcome_id": f"o-{i}", "mission_id": "m-1",
                                "subject": {"id": f"c-{i}"}, "outcome_type": "complaint",
                                "occurred_at": "2026-05-02T00:00:00Z"})) for i in range(0, 300, 7)]
    early = line(gate.sign({"schema": "missionwatch/outcome@1", "outcome_id": "o-early", "mission_id": "m-2",
                            "subject": {"id": "later"}, "outcome_type": "complaint",
                            "occurred_at": "2026-05-01T00:00:00Z"}))
    lines = [line(gate.sign(registration())), *gap_campaign(gate, 300), *outcomes, early,
             line(gate.sign(action(1, mission="m-2", subject="later"))), line(gate.sign(action(2)))]
    rebuilt: dict[tuple[str, float, str, str], dict[str, float]] = {}
    touched_missions = set()
    for x in lines:
        step = m.feed(x)
        touched_missions |= step.missions
        for cell in step.cells:
            rebuilt[cell] = m.ledger_cell(*cell)
    want = {(mid, *key): dict(c) for mid in m.mission_ids() for key, c in m.missions[mid].ledger.cells.items()}
    assert rebuilt == want
    assert touched_missions == {"m-1", "m-2"}
    assert any(k[2] == "age_band" for k in rebuilt)
