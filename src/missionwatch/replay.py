"""The monitoring core over a file, in file order (`missionwatch replay`)."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .intake import default_workers, verify_ahead
from .monitor import Accepted, Monitor
from .signing import Keyring, Signer

__all__ = ["ReplayResult", "replay_file", "replay_lines"]

Progress = Callable[[int], None]


@dataclass
class ReplayResult:
    monitor: Monitor
    events: list[dict[str, Any]]
    rejected: list[dict[str, Any]]
    accepted: list[tuple[int, Accepted]]
    lines: int

    @property
    def duplicates(self) -> int:
        return sum(a.duplicate for _, a in self.accepted)


def _dump(rec: dict[str, Any]) -> str:
    return json.dumps(rec, ensure_ascii=False, separators=(",", ":"))


def replay_lines(monitor: Monitor, lines: Iterable[str | bytes], progress: Progress | None = None,
                 *, workers: int = 0) -> ReplayResult:
    """Feed `lines` (an iterable of text lines, bytes or str) to `monitor`, in order.

    Blank lines are skipped; every other line is one message. With `workers` > 0,
    that many processes check signatures ahead of the core (`verify_ahead`); the
    result is the same as with none.
    """
    events: list[dict[str, Any]] = []
    rejected: list[dict[str, Any]] = []
    accepted: list[tuple[int, Accepted]] = []
    n = 0
    checked = verify_ahead(lines, monitor.keyring, workers, limits=monitor.limits)
    for n, (line, signatures) in enumerate(checked, 1):
        if progress is not None:
            progress(len(line))
        if not line.strip():
            continue
        step = monitor.feed(monitor.prepare(line, signatures))
        events.extend(step.out)
        accepted.extend((n, a) for a in step.accepted)
        for r in step.rejected:
            rejected.append({"line": n, **monitor.rejection_row(r, line)})
    return ReplayResult(monitor, events, rejected, accepted, n)


def replay_file(
    input_path: Path,
    out_dir: Path,
    monitor: Monitor,
    *,
    progress: Progress | None = None,
    ledger: bool = True,
    workers: int | None = None,
) -> ReplayResult:
    """Replay `input_path` and write events.jsonl, rejected.jsonl and ledger.duckdb into out_dir.

    `workers`: processes that check signatures ahead of the core; None picks
    `default_workers()` (one per spare core, at most 4).
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    with input_path.open("rb") as f:
        result = replay_lines(monitor, f, progress,
                              workers=default_workers() if workers is None else workers)
    with (out_dir / "events.jsonl").open("w", encoding="utf-8") as f:
        for e in result.events:
            f.write(_dump(e) + "\n")
    with (out_dir / "rejected.jsonl").open("w", encoding="utf-8") as f:
        for r in result.rejected:
            f.write(_dump(r) + "\n")
    if ledger:
        from .store import write_ledger

        write_ledger(out_dir / "ledger.duckdb", monitor, result.accepted, result.events, result.rejected)
    return result


def write_monitor_key(signer: Signer, path: Path) -> None:
    ring = Keyring()
    ring.add(signer.key_id, signer.public_key, "monitor")
    path.write_text(json.dumps(ring.to_json(), indent=2) + "\n", encoding="utf-8")
