"""`missionwatch tail`: the two topics merged back into chain order, once each; --follow keeps
printing as records arrive (real broker)."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time

from missionwatch.stream.broker import EmbeddedBroker
from missionwatch.stream.tail import ChainMerge


def r(mission: str, seq: int) -> bytes:
    return json.dumps({"mission_id": mission, "seq": seq}).encode()


def test_merge_restores_chain_order_and_drops_copies() -> None:
    m = ChainMerge()
    got: list[bytes] = []
    for value in (r("a", 1), r("b", 0), r("a", 0), r("a", 0), r("a", 2), b"junk", r("a", 1), r("b", 2)):
        got += m.add(value)
    assert got == [r("b", 0), r("a", 0), r("a", 1), r("a", 2)]
    assert m.gaps() == {"b": (1, 2)} and m.skipped == 3
    assert m.skip_gap("b") == [r("b", 2)] and m.gaps() == {}
    only = ChainMerge("a")
    assert [x for v in (r("b", 0), r("a", 0)) for x in only.add(v)] == [r("a", 0)]


def test_follow_prints_records_as_they_arrive_until_ctrl_c(broker: EmbeddedBroker) -> None:
    from tests.stream.conftest import produce_to

    proc = subprocess.Popen([sys.executable, "-m", "missionwatch.cli", "tail", "--broker", broker.url, "--follow"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        time.sleep(2)  # it reads what the topics hold (nothing yet) and waits
        produce_to(broker.bootstrap, "missionwatch.control", [r("m", 1)])
        produce_to(broker.bootstrap, "missionwatch.out", [r("m", 0), r("m", 2), r("m", 0)])
        assert proc.stdout is not None
        lines = [json.loads(proc.stdout.readline()) for _ in range(3)]
        assert [x["seq"] for x in lines] == [0, 1, 2]
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(30)
    assert proc.returncode == 130


def test_without_follow_a_gap_is_named_and_exits_1(broker: EmbeddedBroker) -> None:
    from tests.stream.conftest import produce_to

    produce_to(broker.bootstrap, "missionwatch.out", [r("gappy", 0), r("gappy", 2)])
    out = subprocess.run([sys.executable, "-m", "missionwatch.cli", "tail", "--broker", broker.url,
                          "--mission", "gappy"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 1 and [json.loads(x)["seq"] for x in out.stdout.splitlines()] == [0]
    assert "mission 'gappy': seq 1 is not on the topics (they hold seq 2 onwards)" in out.stderr


def test_a_checkpoint_comes_out_right_after_the_record_it_ends_with() -> None:
    def rec(seq: int) -> bytes:
        return json.dumps({"schema": "missionwatch/strategy@1", "mission_id": "m", "seq": seq}).encode()

    def cp(size: int) -> bytes:
        return json.dumps({"schema": "missionwatch/checkpoint@1", "mission_id": "m", "tree_size": size}).encode()

    merge = ChainMerge()
    got = [v for value in (rec(0), cp(2), rec(2), cp(2), rec(1), cp(3), cp(1)) for v in merge.add(value)]
    assert got == [rec(0), rec(1), cp(2), rec(2), cp(3)]  # cp(2) waited for seq 1; copies and an old one skipped
