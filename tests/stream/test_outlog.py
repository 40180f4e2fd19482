"""Out records on disk: one file per mission in seq order, idempotent under redelivery, a line
cut by a crash dropped, hostile mission ids kept apart and inside the directory."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from missionwatch.stream.outlog import OutLog, file_name


def rec(mission: str, seq: int, pad: str = "") -> bytes:
    return json.dumps({"schema": "missionwatch/strategy@1", "mission_id": mission, "seq": seq, "pad": pad}).encode()


def seqs(path: Path) -> list[int]:
    return [json.loads(ln)["seq"] for ln in path.read_bytes().splitlines()]


def test_records_go_once_in_seq_order_however_they_are_redelivered(tmp_path: Path) -> None:
    log = OutLog(tmp_path)
    for s in (0, 1, 2):
        log.add(rec("m", s))
    log.add(rec("n", 0))
    assert log.flush() == 4
    for s in (1, 2, 3, 2, 4):  # a redelivery republishes 1 and 2; 3 and 4 are new; 2 again in one batch
        log.add(rec("m", s))
    assert log.flush() == 2
    assert seqs(tmp_path / "m.jsonl") == [0, 1, 2, 3, 4] and seqs(tmp_path / "n.jsonl") == [0]
    again = OutLog(tmp_path)  # a restarted worker reads where each file ends
    again.add(rec("m", 4))
    again.add(rec("m", 5))
    assert again.flush() == 1 and seqs(tmp_path / "m.jsonl") == [0, 1, 2, 3, 4, 5]


def test_a_gap_is_not_written_and_is_logged(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    log = OutLog(tmp_path)
    log.add(rec("m", 0))
    log.add(rec("m", 2))
    with caplog.at_level(logging.ERROR, "missionwatch.stream"):
        assert log.flush() == 1
    assert "seq 2 after 0 on disk" in caplog.text and seqs(tmp_path / "m.jsonl") == [0]


def test_a_line_cut_by_a_crash_is_dropped_and_written_again(tmp_path: Path) -> None:
    path = tmp_path / "m.jsonl"
    whole = rec("m", 0, "x" * 100_000) + b"\n" + rec("m", 1, "y" * 70_000) + b"\n"
    path.write_bytes(whole + rec("m", 2)[:-7])  # seq 2 cut mid-write
    log = OutLog(tmp_path)
    log.add(rec("m", 2))
    assert log.flush() == 1
    assert seqs(path) == [0, 1, 2] and path.read_bytes().startswith(whole)
    path.write_bytes(b'{"schema": "missionwatch/str')  # only a cut line
    log = OutLog(tmp_path)
    log.add(rec("m", 0))
    assert log.flush() == 1 and seqs(path) == [0]


@pytest.mark.parametrize("mission", ["../../etc/passwd", "a/b", "..", ".", "", "m\u200b", "ｍ", "m" * 400,
                                     "m" * 400 + "x", "CON", "-rf", "m\nn", "\ud800"])
def test_hostile_mission_ids_get_their_own_file_inside_the_directory(tmp_path: Path, mission: str) -> None:
    name = file_name(mission)
    assert "/" not in name and not name.startswith(".") and len(name.encode()) <= 255
    assert name != file_name("m") and (tmp_path / name).resolve().parent == tmp_path.resolve()
    log = OutLog(tmp_path)
    log.add(json.dumps({"mission_id": mission, "seq": 0}).encode())
    assert log.flush() == 1 and (tmp_path / name).exists()


def test_distinct_ids_never_share_a_file() -> None:
    ids = ["m" * 400, "m" * 400 + "x", "m" * 401, "a/b", "a%2Fb", "a b", "a+b", ".x", "%2Ex", "", "%"]
    assert len({file_name(i) for i in ids}) == len(ids)


def test_records_without_mission_or_seq_are_logged_not_written(tmp_path: Path,
                                                                caplog: pytest.LogCaptureFixture) -> None:
    log = OutLog(tmp_path)
    with caplog.at_level(logging.ERROR, "missionwatch.stream"):
        for bad in (b"not json", b"{}", b'{"mission_id": "m", "seq": "x"}', b"[1]"):
            log.add(bad)
    assert log.flush() == 0 and list(tmp_path.iterdir()) == [] and caplog.text.count("not written") == 4


def cp(mission: str, size: int) -> bytes:
    return json.dumps({"schema": "missionwatch/checkpoint@1", "mission_id": mission, "tree_size": size}).encode()


def places(path: Path) -> list[str]:
    return [f"s{r['seq']}" if "seq" in r else f"c{r['tree_size']}"
            for r in map(json.loads, path.read_bytes().splitlines())]


def test_a_checkpoint_goes_once_right_after_the_records_it_covers(tmp_path: Path) -> None:
    log = OutLog(tmp_path)
    for value in (cp("m", 2), rec("m", 1), rec("m", 0), rec("m", 2), cp("m", 3)):  # in any order
        log.add(value)
    log.flush()
    assert places(tmp_path / "m.jsonl") == ["s0", "s1", "c2", "s2", "c3"]
    for value in (rec("m", 2), cp("m", 3), cp("m", 2), rec("m", 3), cp("m", 5)):  # redelivered, and one ahead
        log.add(value)
    log.flush()
    assert places(tmp_path / "m.jsonl") == ["s0", "s1", "c2", "s2", "c3", "s3"]  # c5 waits for its record
    again = OutLog(tmp_path)  # a restarted worker: the checkpoint on disk is not written twice
    for value in (cp("m", 3), rec("m", 4), cp("m", 5)):
        again.add(value)
    again.flush()
    assert places(tmp_path / "m.jsonl") == ["s0", "s1", "c2", "s2", "c3", "s3", "s4", "c5"]
