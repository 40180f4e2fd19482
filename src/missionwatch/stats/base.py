"""The one small shape every detector has (River's, as STYLE.md asks).

- settings are stored under their constructor argument names;
- `_reset()` builds all state, so `reset()` returns a detector to what its
  constructor made (frozen baselines are settings and are kept);
- `update(...)` takes one observation (`t` is event time, optional);
- `status()` is a JSON-ready dict of what it currently concludes;
- instances pickle (plain attributes only), so service state can be snapshotted.
"""

from __future__ import annotations

from typing import Any

__all__ = ["Detector"]


class Detector:
    __slots__ = ()  # subclasses with many instances per mission declare theirs

    def reset(self) -> None:
        """Forget every observation; keep the settings."""
        self._reset()

    def _reset(self) -> None:
        raise NotImplementedError

    def status(self) -> dict[str, Any]:
        raise NotImplementedError
