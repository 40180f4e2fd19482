"""`missionwatch run` and `missionwatch broker` refuse bad settings with a reason, and the
broker serves Kafka until Ctrl-C."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys

from missionwatch.stream.broker import free_port, wait_for_port

MW = [sys.executable, "-m", "missionwatch.cli"]


def test_run_refuses_bad_settings_and_an_absent_broker() -> None:
    for args, said in ((["--linger", "-1"], "linger"),
                       (["--broker", "nonsense"], "'nonsense' is not a broker address"),
                       (["--broker", f"kafka://127.0.0.1:{free_port()}"], "no Kafka broker answers at")):
        r = subprocess.run([*MW, "run", *args], capture_output=True, text=True, timeout=120)
        assert r.returncode == 2, (args, r.stdout, r.stderr)
        assert said in r.stderr and "Traceback" not in r.stderr, (args, r.stderr)


def test_the_broker_command_serves_kafka_with_the_topics_until_ctrl_c() -> None:
    from aiokafka.admin import AIOKafkaAdminClient

    port = free_port()
    proc = subprocess.Popen([*MW, "broker", "--port", str(port), "--partitions", "3"], stderr=subprocess.PIPE,
                            text=True, start_new_session=True)
    try:
        wait_for_port(port, 30)
        assert proc.stderr is not None
        ready = proc.stderr.readline()  # said once the topics exist (asking earlier would auto-create them)
        assert f"broker on kafka://127.0.0.1:{port}" in ready, ready

        async def topics() -> dict[str, int]:
            admin = AIOKafkaAdminClient(bootstrap_servers=f"127.0.0.1:{port}")
            await admin.start()
            try:
                for _ in range(50):
                    meta = await admin.describe_topics(["missionwatch.in", "missionwatch.control"])
                    if all(t["partitions"] for t in meta):
                        return {t["topic"]: len(t["partitions"]) for t in meta}
                    await asyncio.sleep(0.2)
                return {}
            finally:
                await admin.close()

        assert asyncio.run(topics()) == {"missionwatch.in": 3, "missionwatch.control": 3}
        taken = subprocess.run([*MW, "broker", "--port", str(port)], capture_output=True, text=True, timeout=60)
        assert taken.returncode == 2 and "already in use" in taken.stderr
    finally:
        os.killpg(proc.pid, signal.SIGINT)
        _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0 and "stopping the broker" in err
    with subprocess.Popen(["ps", "-ww", "-eo", "args"], stdout=subprocess.PIPE, text=True) as ps:
        assert f"127.0.0.1:{port}" not in (ps.communicate()[0])


def _run(port: int, web: int, tmp_path) -> subprocess.Popen[str]:
    """`missionwatch run` without --broker, its broker port `port`, its web port `web`."""
    return subprocess.Popen([*MW, "run", "--broker-port", str(port), "--web-port", str(web),
                             "--data", str(tmp_path / "data")], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)


def _partitions(proc: subprocess.Popen[str], web: int) -> list[int]:
    """The partitions the worker says it holds, once it holds four (or two minutes passed)."""
    import json
    import time
    import urllib.request

    deadline, partitions = time.monotonic() + 120, []
    while len(partitions) < 4 and time.monotonic() < deadline:
        assert proc.poll() is None, proc.communicate()[0]
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{web}/healthz", timeout=2) as r:
                partitions = json.loads(r.read())["partitions"]
        except OSError:
            time.sleep(0.25)
    return partitions


def test_run_without_a_broker_starts_the_embedded_one_and_stops_it(tmp_path) -> None:
    port, web = free_port(), free_port()
    proc = _run(port, web, tmp_path)
    try:
        assert _partitions(proc, web) == [0, 1, 2, 3]
        assert (tmp_path / "data" / "monitor.pem").is_file()  # its key, made and kept
        assert (tmp_path / "data" / "monitor-key.json").is_file()
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0, out
    ps = subprocess.run(["ps", "-ww", "-eo", "args"], capture_output=True, text=True, check=True).stdout
    assert f"127.0.0.1:{port}" not in ps  # the broker it started is gone


def test_run_without_a_broker_joins_the_one_missionwatch_broker_started(tmp_path) -> None:
    """`missionwatch broker` then `missionwatch run`: the default of CONTRACT 3, two commands."""
    port, web = free_port(), free_port()
    broker = subprocess.Popen([*MW, "broker", "--port", str(port)], stderr=subprocess.PIPE, text=True,
                              start_new_session=True)
    try:
        wait_for_port(port, 30)
        assert broker.stderr is not None and "broker on" in broker.stderr.readline()
        proc = _run(port, web, tmp_path)
        try:
            assert _partitions(proc, web) == [0, 1, 2, 3]
        finally:
            os.killpg(proc.pid, signal.SIGTERM)
            out, _ = proc.communicate(timeout=60)
        assert proc.returncode == 0, out
        assert f"a broker already listens on 127.0.0.1:{port}" in out
        assert broker.poll() is None  # the broker it joined is not its to stop
    finally:
        os.killpg(broker.pid, signal.SIGINT)
        broker.communicate(timeout=30)
