"""A compact, exact table of the ids a mission has accepted, for deduplication.

CONTRACT: a second record with the same id and the same content is a duplicate
(counted, changes nothing); with other content it is refused. Deduplication must
therefore remember every id for the life of the mission. A Python dict of id
strings to hash strings costs about 300 bytes per record; this table keeps, per
id, a 64-bit digest of the id and a 64-bit word holding a 61-bit digest of the
record's hash and 3 bits of flags, in two numpy arrays with open addressing
(load at most 1/2): about 32 bytes per record, in two allocations, with no
Python object per id.

Exact up to digest collisions: two different ids collide with probability about
n^2 / 2^65 (below one in a million for 4 million ids of one mission), and a
collision reads as a conflicting duplicate, never as a silent double count.
"""

from __future__ import annotations

import hashlib

import numpy as np

__all__ = ["IdTable", "content_digest"]

_EMPTY = 0
_FLAG_BITS = 3
_FLAG_MASK = (1 << _FLAG_BITS) - 1


_last: tuple[str, str, int] = ("", "", 0)
"""The latest `_key` worked out: a record's id is looked up, then put (one hash for both)."""


def _key(kind: str, ident: str) -> int:
    global _last
    last = _last  # one tuple, read once: safe from any thread
    if last[1] is ident and last[0] == kind:
        return last[2]
    d = int.from_bytes(hashlib.blake2b(f"{kind}\x00{ident}".encode("utf-8", "surrogatepass"),
                                       digest_size=8).digest(), "little")
    d = d or 1  # 0 marks an empty slot
    _last = (kind, ident, d)
    return d


def content_digest(record_hash: str) -> int:
    """61 bits of a record's `sha256:<hex>` hash."""
    return int(record_hash[7:23], 16) >> _FLAG_BITS


class IdTable:
    """Ids by kind (receipt, outcome, review), each with its record's content digest and flags."""

    __slots__ = ("_keys", "_n", "_vals")

    def __init__(self, capacity: int = 16) -> None:
        size = 1 << max(6, (capacity * 2 - 1).bit_length())
        self._keys = np.zeros(size, dtype=np.uint64)
        self._vals = np.zeros(size, dtype=np.uint64)
        self._n = 0

    def __len__(self) -> int:
        return self._n

    @property
    def nbytes(self) -> int:
        return int(self._keys.nbytes + self._vals.nbytes)

    def _slot(self, key: int) -> int:
        keys = self._keys
        mask = len(keys) - 1
        i = key & mask
        while True:
            found = keys.item(i)  # a Python int: compared without numpy scalars
            if found in (_EMPTY, key):
                return i
            i = (i + 1) & mask

    def get(self, kind: str, ident: str) -> tuple[int, int] | None:
        """(content digest, flags) of an accepted id, or None."""
        key = _key(kind, ident)
        i = self._slot(key)
        if self._keys.item(i) == _EMPTY:
            return None
        v: int = self._vals.item(i)
        return v >> _FLAG_BITS, v & _FLAG_MASK

    def put(self, kind: str, ident: str, digest: int, flags: int = 0) -> None:
        """Remember an accepted id (an id already present keeps its first value)."""
        if not 0 <= flags <= _FLAG_MASK:
            raise ValueError(f"flags take {_FLAG_BITS} bits")
        if (self._n + 1) * 2 > len(self._keys):
            self._grow()
        key = _key(kind, ident)
        i = self._slot(key)
        if self._keys.item(i) != _EMPTY:
            return
        self._keys[i] = key
        self._vals[i] = (digest << _FLAG_BITS | flags) & 0xFFFF_FFFF_FFFF_FFFF
        self._n += 1

    def _grow(self) -> None:
        old_keys, old_vals = self._keys, self._vals
        size = len(old_keys) * 2
        self._keys = np.zeros(size, dtype=np.uint64)
        self._vals = np.zeros(size, dtype=np.uint64)
        mask = size - 1
        for key, val in zip(old_keys[old_keys != _EMPTY].tolist(), old_vals[old_keys != _EMPTY].tolist(),
                            strict=True):
            i = key & mask
            while self._keys[i] != _EMPTY:
                i = (i + 1) & mask
            self._keys[i] = key
            self._vals[i] = val
