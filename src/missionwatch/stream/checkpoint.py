"""Checkpoints: a partition's state on disk with the offset it covers, so that a restarted
worker restores it and replays only the tail of the log (`DATA/checkpoints/pPPPP.ckpt`).

A partition's state (its core `Monitor` and its console `History`) is a function of its
messages in offset order, so a checkpoint taken after offset C and fed the messages after C
is the state a replay from offset 0 reaches (tests/stream/test_checkpoint.py holds them
equal). A file is:

    MWCKPT1\\n
    {"version": 1, "partition": P, "offset": C, "fingerprint": F, "sha256": S, "bytes": N}\\n
    N bytes: the pickled (Monitor, History), without the signing key, keyring and specs

A worker writes it from a child process it forks (stream/dumper.py: its event loop goes on
meanwhile) under a temporary name, fsynced, and renames it into place once the child has ended
well and the live ledger's commit of the same offsets is written. It is used only when it is
whole (its SHA-256), of this format version, of this partition, and made under the same
configuration (`fingerprint`: the package version and its code (`code_digest`), every spec's version, the keyring, the
monitor's public key, the admission limits, allow_unsigned): else the partition is rebuilt from
the log, as without a checkpoint, and the log says why. What a checkpoint holds is the worker's own state
(like its key, DATA is trusted: pickle runs code on load).

Retention: once a partition has a checkpoint, the messages at or before its offset are needed
only by a worker without it (another machine, a lost or refused file). The topic's retention
may delete them: a worker with the checkpoint needs only the log after it, but one without it
can no longer rebuild those missions' state from the log. Keep the topic's messages at least
as long as a worker could need to rebuild from the log, or share DATA.
"""

from __future__ import annotations

import functools
import gc
import hashlib
import io
import json
import logging
import os
import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from .. import __version__
from ..console.history import History
from ..monitor import Monitor

__all__ = ["MAGIC", "VERSION", "Checkpoints", "Due", "Restored", "code_digest", "fingerprint", "fingerprint_parts"]

log = logging.getLogger("missionwatch.stream")

MAGIC = b"MWCKPT1\n"
VERSION = 1


PACKAGE = Path(__file__).resolve().parents[1]
"""The missionwatch package's directory."""


@functools.cache
def code_digest(root: Path = PACKAGE) -> str:
    """SHA-256 over a package's Python sources (relative path and bytes, in path order): a
    checkpoint pickles the core's objects, whose meaning is the code's, so any change of the
    code (not only of the version) refuses it and the partition is rebuilt from the log."""
    h = hashlib.sha256()
    for path in sorted(root.rglob("*.py")):
        rel = path.relative_to(root).as_posix().encode()
        data = path.read_bytes()
        h.update(b"%d:%s%d:" % (len(rel), rel, len(data)) + data)
    return "sha256:" + h.hexdigest()


def fingerprint(monitor: Monitor) -> str:
    """What a checkpoint's state depends on beyond its messages: equal, or the checkpoint is refused."""
    parts = fingerprint_parts(monitor)
    return "sha256:" + hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()


def fingerprint_parts(monitor: Monitor) -> dict[str, Any]:
    """What `fingerprint` hashes."""
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    return {
        "package": __version__,
        "code": code_digest(),
        "specs": {name: spec.version for name, spec in sorted(monitor.specs.specs.items())},
        "keyring": monitor.keyring.to_json(),
        "monitor": [monitor.signer.key_id,
                    monitor.signer.public_key.public_bytes(Encoding.Raw, PublicFormat.Raw).hex()],
        "limits": monitor.limits.model_dump(mode="json"),
        "allow_unsigned": monitor.allow_unsigned,
    }


@dataclass
class Due:
    """A checkpoint to take: a partition's state as of `offset` (`StreamCore.checkpoint_jobs`)."""

    partition: int
    offset: int
    monitor: Monitor
    history: History


@dataclass
class Restored:
    monitor: Monitor
    history: History
    offset: int
    """The last offset the state covers: the log is replayed from offset + 1."""


class _Pickler(pickle.Pickler):
    def __init__(self, file: io.BytesIO, shared: dict[int, str]) -> None:
        super().__init__(file, protocol=5)
        self.shared = shared

    def persistent_id(self, obj: Any) -> str | None:
        return self.shared.get(id(obj))


class _Unpickler(pickle.Unpickler):
    def __init__(self, file: io.BytesIO, shared: dict[str, Any]) -> None:
        super().__init__(file)
        self.shared = shared

    def persistent_load(self, pid: Any) -> Any:
        if pid not in self.shared:
            raise pickle.UnpicklingError(f"unknown shared object {pid!r}")
        return self.shared[pid]


def _shared(monitor: Monitor) -> dict[str, Any]:
    """What a checkpoint does not hold: the worker's configuration, attached on load."""
    return {"signer": monitor.signer, "keyring": monitor.keyring, "specs": monitor.specs,
            "limits": monitor.limits}


class Checkpoints:
    """The checkpoints of a worker's partitions, in `directory`."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)

    def path(self, partition: int) -> Path:
        return self.directory / f"p{partition:04d}.ckpt"

    def dump(self, partition: int, offset: int, monitor: Monitor, history: History) -> bytes:
        """A checkpoint's bytes, taken where the state cannot change meanwhile (the worker takes
        them in a forked child: stream/dumper.py)."""
        buf = io.BytesIO()
        self.write_file(buf, Due(partition, offset, monitor, history), fingerprint(monitor))
        return buf.getvalue()

    def write_file(self, f: BinaryIO, due: Due, fp: str, sha256: Any = hashlib.sha256) -> int:
        """Write the checkpoint of `due` to `f` (`fp`: its monitor's `fingerprint`, `sha256`: the
        hash's constructor); return the payload's size."""
        buf = io.BytesIO()
        _Pickler(buf, {id(v): k for k, v in _shared(due.monitor).items()}).dump((due.monitor, due.history))
        payload = buf.getbuffer()
        digest = sha256()
        digest.update(payload)
        head = {"version": VERSION, "partition": due.partition, "offset": due.offset, "fingerprint": fp,
                "sha256": digest.hexdigest(), "bytes": len(payload)}
        f.write(MAGIC + json.dumps(head).encode() + b"\n")
        f.write(payload)
        return len(payload)

    def write(self, partition: int, data: bytes) -> None:
        """Put a checkpoint in place whole (any thread)."""
        path = self.path(partition)
        tmp = path.with_name(f".tmp-{path.name}")
        tmp.write_bytes(data)
        os.replace(tmp, path)

    def save(self, due: Due) -> None:
        """Take and write a checkpoint here and now (the worker does it in a child: stream/dumper.py)."""
        self.write(due.partition, self.dump(due.partition, due.offset, due.monitor, due.history))

    def load(self, partition: int, fresh: Monitor) -> Restored | None:
        """The partition's checkpoint, its configuration that of `fresh` (a new monitor of this
        worker); None when there is none or it cannot be used (the log says why)."""
        path = self.path(partition)
        if not path.exists():
            return None
        try:
            return self._load(path, partition, fresh)
        except (OSError, ValueError, EOFError, pickle.UnpicklingError, AttributeError, ImportError,
                TypeError, IndexError) as exc:
            log.warning("partition %d: checkpoint %s not used (%s); rebuilding from the log", partition, path,
                        exc)
            return None

    def _load(self, path: Path, partition: int, fresh: Monitor) -> Restored:
        data = path.read_bytes()
        if not data.startswith(MAGIC):
            raise ValueError("not a missionwatch checkpoint")
        line, _, payload = data[len(MAGIC):].partition(b"\n")
        head = json.loads(line)
        if not isinstance(head, dict) or head.get("version") != VERSION:
            raise ValueError(f"format version {head.get('version') if isinstance(head, dict) else '?'}, "
                             f"not {VERSION}")
        if head.get("partition") != partition or not isinstance(head.get("offset"), int):
            raise ValueError("of another partition, or without an offset")
        if len(payload) != head.get("bytes") or hashlib.sha256(payload).hexdigest() != head.get("sha256"):
            raise ValueError("cut short or corrupt (its SHA-256 differs)")
        if head.get("fingerprint") != fingerprint(fresh):
            raise ValueError("made under another configuration (specs, keys, limits or version)")
        collecting = gc.isenabled()
        gc.disable()  # unpickling makes millions of objects and no garbage: collections would only slow it
        try:
            monitor, history = _Unpickler(io.BytesIO(payload), _shared(fresh)).load()
        finally:
            if collecting:
                gc.enable()
        if not isinstance(monitor, Monitor) or not isinstance(history, History):
            raise ValueError("it holds no monitor state")
        return Restored(monitor, history, head["offset"])
