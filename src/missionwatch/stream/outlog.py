"""The out records a worker issued, on disk: one JSON Lines file per mission in seq order
(`DATA/out/<mission>.jsonl`), each line the bytes published to `missionwatch.out` or
`missionwatch.control`, so `missionwatch verify` accepts a file as it is.

At-least-once delivery processes some messages twice (after a crash or a rebalance); their
out records come again byte-identical with the same seq, and are skipped: a file only ever
grows by the next seq. A line cut by a crash mid-write is dropped when the file is next
opened (its record comes again). Records are buffered and written in one append per mission
per step of the agent. A checkpoint of the mission's transparency log (outside the chain, no
seq) goes right after the last record it covers, once.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path
from urllib.parse import quote

__all__ = ["OutLog", "file_name"]

log = logging.getLogger("missionwatch.stream")

MAX_NAME = 180
"""Longest file name stem kept readable; longer ids end in a digest."""


def file_name(mission_id: str) -> str:
    """A mission's file name: its id percent-encoded (so `/`, `..` and look-alikes stay
    distinct and harmless), cut and completed by a digest of the id when long."""
    stem = quote(mission_id, safe="-_.@+=", errors="surrogatepass") or "%"
    if stem.startswith("."):
        stem = "%2E" + stem[1:]
    if len(stem) > MAX_NAME:
        stem = f"{stem[:MAX_NAME - 17]}~{hashlib.sha256(mission_id.encode('utf-8', 'surrogatepass')).hexdigest()[:16]}"
    return stem + ".jsonl"


class OutLog:
    """Appends each mission's out records in seq order; idempotent under redelivery."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)
        self.last: dict[str, int] = {}
        """Per mission, the seq of the last record on disk (-1: none)."""
        self.last_checkpoint: dict[str, int] = {}
        """Per mission, the tree size of the last checkpoint on disk (0: none)."""
        self.pending: dict[str, list[tuple[float, bytes]]] = {}

    def add(self, value: bytes) -> None:
        """Buffer one published out record (a strategy receipt, escalation, control or checkpoint)."""
        try:
            rec = json.loads(value)
            mission = str(rec["mission_id"])
            # a checkpoint of tree size N sits after seq N - 1
            place = float(rec["seq"]) if "seq" in rec else int(rec["tree_size"]) - 0.5
        except (ValueError, KeyError, TypeError):
            log.error("an out record without mission_id and seq was not written to disk: %.200r", value)
            return
        self.pending.setdefault(mission, []).append((place, value))

    def flush(self) -> int:
        """Write what was buffered; return how many records were appended."""
        written = 0
        for mission, records in self.pending.items():
            path = self.directory / file_name(mission)
            last = self.last.get(mission)
            if last is None:
                last = self._recover(path, mission)
            lines = []
            for place, value in sorted(records, key=lambda r: r[0]):
                if place != int(place):  # a checkpoint: once, after the records it covers
                    size = int(place + 0.5)
                    if self.last_checkpoint.get(mission, 0) < size <= last + 1:
                        lines.append(value.rstrip(b"\n") + b"\n")
                        self.last_checkpoint[mission] = size
                elif place == last + 1:
                    lines.append(value.rstrip(b"\n") + b"\n")
                    last = int(place)
                elif place > last + 1:  # a gap: the chain on disk would break; the log says why
                    log.error("mission %r: out record seq %d after %d on disk; not written", mission, place, last)
            if lines:
                with path.open("ab") as f:
                    f.write(b"".join(lines))
                written += len(lines)
            self.last[mission] = last
        self.pending.clear()
        return written

    def _recover(self, path: Path, mission: str) -> int:
        """The seq of a file's last whole line (-1 for none), dropping a line cut by a crash."""
        if not path.exists():
            return -1
        with path.open("rb+") as f:
            size = f.seek(0, os.SEEK_END)
            if size == 0:
                return -1
            tail = b""
            pos = size
            while pos > 0 and (tail.count(b"\n") < 2 or len(tail) < 65536):
                step = min(65536, pos)
                pos -= step
                f.seek(pos)
                tail = f.read(step) + tail
            if not tail.endswith(b"\n"):
                cut = tail.rfind(b"\n")
                keep = pos + cut + 1 if cut >= 0 else 0
                log.warning("%s: dropping a line cut by a crash (%d bytes)", path, size - keep)
                f.truncate(keep)
                tail = tail[:cut + 1] if cut >= 0 else b""
            lines = [ln for ln in tail.split(b"\n") if ln.strip()]
        for ln in reversed(lines):  # the last checkpoint on disk, if the tail holds one
            rec = _json(ln)
            if rec is not None and "tree_size" in rec and "seq" not in rec:
                self.last_checkpoint[mission] = int(str(rec["tree_size"]))
                break
        for ln in reversed(lines):
            rec = _json(ln)
            seq = rec.get("seq") if rec is not None else None
            if isinstance(seq, int):
                return seq
        if lines:
            log.error("%s: its last lines are not out records; writing after them anyway", path)
        return -1


def _json(line: bytes) -> dict[str, object] | None:
    try:
        rec = json.loads(line)
    except ValueError:
        return None
    return rec if isinstance(rec, dict) else None
