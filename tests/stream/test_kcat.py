"""kcat (Debian's, librdkafka 2.0) produces receipts into missionwatch.in and consumes
missionwatch.control of a running worker: the topics are plain Kafka, keyed by mission_id."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from missionwatch.signing import Keyring
from missionwatch.stream.broker import EmbeddedBroker, create_topics, free_port
from missionwatch.stream.demo import write_demo_specs
from missionwatch.verify import check_out_record
from tests.conftest import SPECS
from tests.stream.conftest import Worker
from tests.stream.librdkafka_shim import Shim
from tests.stream.test_gateway_loop import campaign


@pytest.fixture(scope="module")
def shimmed() -> Iterator[EmbeddedBroker]:
    """The embedded broker behind the librdkafka shim (every client, the worker too, goes
    through it, since the broker advertises the shim's port)."""
    public = free_port()
    with EmbeddedBroker(port=free_port(), advertised_port=public) as b:
        shim = Shim(public, b.port).start()
        try:
            create_topics(b.bootstrap, 4)
            yield b
        finally:
            shim.stop()


def test_kcat_produces_receipts_and_consumes_control(shimmed: EmbeddedBroker, tmp_path: Path) -> None:
    kcat = shutil.which("kcat")
    assert kcat, "kcat is missing: `make test` installs it (apt-get install kcat)"
    records, paths = campaign(tmp_path, "m-kcat")
    worker = Worker(shimmed, tmp_path / "data", paths["keyring"], paths["monitor-1"], group="kcat",
                    specs=write_demo_specs(SPECS, tmp_path / "specs"))
    try:
        worker.wait_assigned(want=4)
        lines = "".join(f"m-kcat\t{json.dumps(r)}\n" for r in records)
        subprocess.run([kcat, "-b", shimmed.bootstrap, "-P", "-t", "missionwatch.in", "-K", "\t"],
                       input=lines.encode(), check=True, timeout=60)
        controls: list[dict[str, Any]] = []
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not controls:
            out = subprocess.run([kcat, "-b", shimmed.bootstrap, "-C", "-t", "missionwatch.control",
                                  "-o", "beginning", "-e", "-q", "-f", "%k\t%s\n"],
                                 capture_output=True, check=True, timeout=60)
            for line in out.stdout.decode().splitlines():
                key, _, value = line.partition("\t")
                rec = json.loads(value)
                assert key == rec["mission_id"]
                controls.append(rec)
            time.sleep(0.5)
        # the pause comes two thirds into the campaign: wait for the worker to take the rest
        received = worker.metric("missionwatch_records_in_total")
        while received < len(records) and time.monotonic() < deadline + 60:
            time.sleep(0.5)
            received = worker.metric("missionwatch_records_in_total")
    finally:
        assert worker.stop() == 0
    assert received == len(records)
    assert [(c["mission_id"], c["state"]) for c in controls] == [("m-kcat", "paused")]
    assert isinstance(check_out_record(controls[0], Keyring.load(paths["keyring"])), tuple)
