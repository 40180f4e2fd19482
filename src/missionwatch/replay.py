"""The monitoring core over a file, in file order (`missionwatch replay`).

What the core issues goes straight to its sinks: out records to events.jsonl and
rejections to rejected.jsonl as they are issued, and the ledger's rows to a
`LedgerWriter`, which holds a bounded batch of them (store/duck.py). So a replay's
memory does not grow with its output; what grows with the input is the monitor's
own state. `ReplayResult` counts what happened; it keeps the records themselves
only when asked (`keep=True`, the default of `replay_lines`, whose callers hold
their input in memory anyway; `replay_file` keeps nothing by default).
"""

from __future__ import annotations

import gc
import json
import os
from collections.abc import Callable, Iterable, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, Protocol

from .intake import default_workers, verify_ahead
from .ledger import Cell, Key
from .monitor import Accepted, Monitor
from .signing import Keyring, Signer

__all__ = ["JsonlFiles", "Kept", "ReplayResult", "Sink", "replay_file", "replay_lines"]

Progress = Callable[[int], None]


class Sink(Protocol):
    """Where a replay sends what the core issues, as it issues it."""

    def add_accepted(self, line: int, a: Accepted) -> None: ...
    def add_event(self, e: dict[str, Any]) -> None: ...
    def add_rejected(self, row: dict[str, Any]) -> None: ...
    def add_sealed(self, mission_id: str, key: Key, cell: Cell) -> None: ...


@dataclass
class Kept:
    """A sink that keeps everything in memory: for tests and callers with small inputs."""

    events: list[dict[str, Any]] = field(default_factory=list)
    rejected: list[dict[str, Any]] = field(default_factory=list)
    accepted: list[tuple[int, Accepted]] = field(default_factory=list)
    sealed: list[tuple[str, Key, Cell]] = field(default_factory=list)

    def add_accepted(self, line: int, a: Accepted) -> None:
        self.accepted.append((line, a))

    def add_sealed(self, mission_id: str, key: Key, cell: Cell) -> None:
        self.sealed.append((mission_id, key, cell))

    def add_event(self, e: dict[str, Any]) -> None:
        self.events.append(e)

    def add_rejected(self, row: dict[str, Any]) -> None:
        self.rejected.append(row)


@dataclass
class ReplayResult:
    monitor: Monitor
    lines: int = 0
    n_accepted: int = 0
    """Accepted records, duplicates not counted."""
    duplicates: int = 0
    n_rejected: int = 0
    """Rejections: one per rejected line, or per rejected item of a batch envelope."""
    n_events: int = 0
    """Out records issued."""
    kept: Kept | None = None

    def _kept(self) -> Kept:
        if self.kept is None:
            raise RuntimeError("this replay kept no records (replay with keep=True to keep them); "
                               "its counts are n_accepted, duplicates, n_rejected, n_events")
        return self.kept

    @property
    def events(self) -> list[dict[str, Any]]:
        """Every out record, in the order issued (only with keep=True)."""
        return self._kept().events

    @property
    def rejected(self) -> list[dict[str, Any]]:
        """The rejected.jsonl rows (only with keep=True)."""
        return self._kept().rejected

    @property
    def accepted(self) -> list[tuple[int, Accepted]]:
        """Each accepted record (duplicates too) with its line number (only with keep=True)."""
        return self._kept().accepted

    @property
    def sealed(self) -> list[tuple[str, Key, Cell]]:
        """The ledger cells the monitor sealed, as issued (only with keep=True); with the
        monitor's open cells they make the whole ledger."""
        return self._kept().sealed


def _dump(rec: dict[str, Any]) -> str:
    return json.dumps(rec, ensure_ascii=False, separators=(",", ":"))


def replay_lines(monitor: Monitor, lines: Iterable[str | bytes], progress: Progress | None = None,
                 *, workers: int = 0, sinks: Sequence[Sink] = (), keep: bool = True) -> ReplayResult:
    """Feed `lines` (an iterable of text lines, bytes or str) to `monitor`, in order.

    Blank lines are skipped; every other line is one message. What the core issues goes to
    each of `sinks` as it is issued, and is kept in the result with `keep`. With `workers` > 0,
    that many processes check signatures ahead of the core (`verify_ahead`); the result is
    the same as with none.
    """
    gc.set_threshold(10_000, *gc.get_threshold()[1:])  # the core's state is long-lived: fewer young collections
    result = ReplayResult(monitor, kept=Kept() if keep else None)
    out: list[Sink] = [*sinks, *([result.kept] if result.kept is not None else [])]
    checked = verify_ahead(lines, monitor.keyring, workers, limits=monitor.limits)
    for n, (line, signatures) in enumerate(checked, 1):
        result.lines = n
        if progress is not None:
            progress(len(line))
        if not line.strip():
            continue
        step = monitor.feed(monitor.prepare(line, signatures))
        for e in step.out:
            for s in out:
                s.add_event(e)
        for a in step.accepted:
            for s in out:
                s.add_accepted(n, a)
        for r in step.rejected:
            row = {"line": n, **monitor.rejection_row(r, line)}
            for s in out:
                s.add_rejected(row)
        for mid, key, cell in step.sealed:
            for s in out:
                s.add_sealed(mid, key, cell)
        result.n_events += len(step.out)
        result.duplicates += sum(a.duplicate for a in step.accepted)
        result.n_accepted += sum(not a.duplicate for a in step.accepted)
        result.n_rejected += len(step.rejected)
    return result


class JsonlFiles:
    """A sink writing events.jsonl and rejected.jsonl into a directory as records are issued.

    They are written under a `.partial` name and take their own name when the replay is
    done (on leaving the `with` block without an exception); after a failure none is left.
    """

    NAMES = ("events.jsonl", "rejected.jsonl")

    def __init__(self, out_dir: Path) -> None:
        self.paths = [out_dir / name for name in self.NAMES]
        self._partial = [p.with_name(p.name + ".partial") for p in self.paths]
        self._files = [p.open("w", encoding="utf-8") for p in self._partial]

    def add_accepted(self, line: int, a: Accepted) -> None:
        pass

    def add_event(self, e: dict[str, Any]) -> None:
        self._files[0].write(_dump(e) + "\n")

    def add_rejected(self, row: dict[str, Any]) -> None:
        self._files[1].write(_dump(row) + "\n")

    def add_sealed(self, mission_id: str, key: Key, cell: Cell) -> None:
        pass

    def __enter__(self) -> JsonlFiles:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        for f in self._files:
            f.close()
        for partial, path in zip(self._partial, self.paths, strict=True):
            if kind is None:
                os.replace(partial, path)
            else:
                partial.unlink(missing_ok=True)


def replay_file(
    input_path: Path,
    out_dir: Path,
    monitor: Monitor,
    *,
    progress: Progress | None = None,
    status: Callable[[str], None] | None = None,
    ledger: bool = True,
    workers: int | None = None,
    keep: bool = False,
    batch_rows: int | None = None,
) -> ReplayResult:
    """Replay `input_path` and write events.jsonl, rejected.jsonl and ledger.duckdb into out_dir.

    Nothing the core issues is held, unless `keep`: the ledger writer holds at most
    `batch_rows` rows (None: its default), so what grows with the input is the monitor's own
    state. `status` hears what the replay does once the input is read (building the ledger
    takes a while).
    `workers`: processes that check signatures ahead of the core; None picks
    `default_workers()` (one per spare core, at most 4).
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    with ExitStack() as stack:
        sinks: list[Sink] = [stack.enter_context(JsonlFiles(out_dir))]
        if ledger:
            from .store import DEFAULT_BATCH_ROWS, LedgerWriter

            rows = DEFAULT_BATCH_ROWS if batch_rows is None else batch_rows
            sinks.append(stack.enter_context(LedgerWriter(out_dir / "ledger.duckdb", monitor, batch_rows=rows)))
        else:  # a ledger of an earlier replay would pass for this one's
            for name in ("ledger.duckdb", "ledger.duckdb.wal"):
                (out_dir / name).unlink(missing_ok=True)
        with input_path.open("rb") as f:
            result = replay_lines(monitor, f, progress, sinks=sinks, keep=keep,
                                  workers=default_workers() if workers is None else workers)
        if ledger and status is not None:
            status("writing ledger.duckdb")
    return result


def write_monitor_key(signer: Signer, path: Path) -> None:
    ring = Keyring()
    ring.add(signer.key_id, signer.public_key, "monitor")
    path.write_text(json.dumps(ring.to_json(), indent=2) + "\n", encoding="utf-8")
