"""A transparency log of the monitor's out records: an RFC 9162 Merkle tree per mission, its
checkpoints as C2SP signed notes (tlog-checkpoint), witness cosignatures (tlog-cosignature),
and the inclusion and consistency proofs that let anyone check a record, or that two
checkpoints describe one append-only log, with the standard library alone.

Leaves: the mission's strategy receipts, escalations and control records in seq order; the
leaf input of a record is the 32-byte SHA-256 digest its `hash` field names (`sha256:<hex>`,
the digest of its canonical bytes, which `missionwatch verify` recomputes). So

    leaf_hash(record) = SHA-256(0x00 || bytes.fromhex(record["hash"][7:]))
    node_hash(l, r)   = SHA-256(0x01 || l || r)

Pure: bytes in, bytes out; no clock (a cosignature's time is given by its caller).
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from urllib.parse import quote

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

__all__ = ["EMPTY_ROOT", "Checkpoint", "MerkleTree", "ProofError", "cosign", "key_id", "leaf_hash",
           "leaf_of", "log_origin", "node_hash", "note_name", "root_from_inclusion", "sign_note", "verify_consistency",
           "verify_cosignature", "verify_inclusion", "verify_note"]

EMPTY_ROOT = hashlib.sha256(b"").digest()
NOTE_ED25519 = 0x01
COSIGNATURE_ED25519 = 0x04
_DASH = "\u2014 "


def note_name(key_id: str) -> str:
    """The name a monitor key signs checkpoints under: `missionwatch/<key_id>`."""
    return "missionwatch/" + quote(key_id, safe="-_.@=")


def log_origin(key_id: str, mission_id: str) -> str:
    """A mission's log origin line: `missionwatch/<key_id>/<mission_id percent-encoded>`."""
    return note_name(key_id) + "/" + quote(mission_id, safe="-_.@=", errors="surrogatepass")


class ProofError(ValueError):
    """A proof or checkpoint that does not hold; the message says why."""


def leaf_hash(data: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def leaf_of(record_hash: str) -> bytes:
    """The leaf hash of an out record, from its `hash` field (`sha256:` and 64 hex digits)."""
    if not (isinstance(record_hash, str) and record_hash.startswith("sha256:") and len(record_hash) == 71):
        raise ProofError(f"{record_hash!r} is not a record hash (sha256: and 64 hex digits)")
    return leaf_hash(bytes.fromhex(record_hash[7:]))


def _split(n: int) -> int:
    """The largest power of two smaller than n (n > 1)."""
    return 1 << ((n - 1).bit_length() - 1)


@dataclass
class MerkleTree:
    """An append-only tree of leaf hashes, keeping every complete subtree's hash (about twice
    the leaves), so that roots and proofs of any earlier size cost O(log n) hashes."""

    levels: list[list[bytes]] = field(default_factory=lambda: [[]])
    """levels[k][i]: the hash of leaves i * 2^k .. (i + 1) * 2^k - 1."""

    @property
    def size(self) -> int:
        return len(self.levels[0])

    def append(self, leaf: bytes) -> int:
        """Add a leaf hash; return its index."""
        index = self.size
        self.levels[0].append(leaf)
        k, i = 0, index
        while i % 2 == 1:  # a subtree just completed: its parent too
            if len(self.levels) == k + 1:
                self.levels.append([])
            self.levels[k + 1].append(node_hash(self.levels[k][i - 1], self.levels[k][i]))
            k, i = k + 1, i // 2
        return index

    def _hash(self, start: int, end: int) -> bytes:
        """MTH of leaves start..end-1 (RFC 9162 2.1.1)."""
        n = end - start
        if n == 0:
            return EMPTY_ROOT
        k = n.bit_length() - 1
        if n == 1 << k and start % n == 0:
            return self.levels[k][start >> k]
        mid = start + _split(n)
        return node_hash(self._hash(start, mid), self._hash(mid, end))

    def root(self, size: int | None = None) -> bytes:
        size = self.size if size is None else size
        self._check(size)
        return self._hash(0, size)

    def inclusion(self, index: int, size: int | None = None) -> list[bytes]:
        """The inclusion proof of leaf `index` in the tree of `size` leaves (RFC 9162 2.1.3.1)."""
        size = self.size if size is None else size
        self._check(size)
        if not 0 <= index < size:
            raise ProofError(f"leaf {index} is not in a tree of {size}")
        proof: list[bytes] = []
        start, end = 0, size
        while end - start > 1:
            mid = start + _split(end - start)
            if index < mid:
                proof.append(self._hash(mid, end))
                end = mid
            else:
                proof.append(self._hash(start, mid))
                start = mid
        return proof[::-1]

    def consistency(self, old: int, new: int | None = None) -> list[bytes]:
        """The consistency proof from the tree of `old` leaves to that of `new` (RFC 9162 2.1.4.1)."""
        new = self.size if new is None else new
        self._check(new)
        if not 0 <= old <= new:
            raise ProofError(f"no consistency proof from size {old} to size {new}")
        if old in (0, new):
            return []
        proof: list[bytes] = []
        start, end, whole = 0, new, True
        while old - start != end - start:
            mid = start + _split(end - start)
            if old <= mid:
                proof.append(self._hash(mid, end))
                end = mid
            else:
                proof.append(self._hash(start, mid))
                start, whole = mid, False
        if not whole:
            proof.append(self._hash(start, end))
        return proof[::-1]

    def _check(self, size: int) -> None:
        if not 0 <= size <= self.size:
            raise ProofError(f"the tree has {self.size} leaves, not {size}")


def root_from_inclusion(index: int, size: int, leaf: bytes, proof: Sequence[bytes]) -> bytes:
    """The root an inclusion proof leads to (RFC 9162 2.1.3.2); ProofError when it cannot."""
    if not 0 <= index < size:
        raise ProofError(f"leaf {index} is not in a tree of {size}")
    fn, sn, r = index, size - 1, leaf
    for p in proof:
        if len(p) != 32:
            raise ProofError("a proof hash is not 32 bytes")
        if sn == 0:
            raise ProofError("the proof is longer than the tree is deep")
        if fn % 2 == 1 or fn == sn:
            r = node_hash(p, r)
            while fn % 2 == 0 and fn != 0:
                fn, sn = fn >> 1, sn >> 1
        else:
            r = node_hash(r, p)
        fn, sn = fn >> 1, sn >> 1
    if sn != 0:
        raise ProofError("the proof is shorter than the tree is deep")
    return r


def verify_inclusion(index: int, size: int, leaf: bytes, proof: Sequence[bytes], root: bytes) -> None:
    """ProofError unless `proof` shows leaf `index` in the tree of `size` leaves with `root`."""
    if root_from_inclusion(index, size, leaf, proof) != root:
        raise ProofError(f"leaf {index} is not in the tree of size {size} with that root")


def verify_consistency(old: int, new: int, old_root: bytes, new_root: bytes, proof: Sequence[bytes]) -> None:
    """ProofError unless `proof` shows the tree of `old` leaves a prefix of the tree of `new`
    (RFC 9162 2.1.4.2)."""
    if not 0 <= old <= new:
        raise ProofError(f"size {new} is smaller than size {old}: the log went back")
    if old == new:
        if proof or old_root != new_root:
            raise ProofError(f"two different roots for size {old}: the log forked")
        return
    if old == 0:
        if proof:
            raise ProofError("a proof from the empty tree must be empty")
        return
    if not proof or any(len(p) != 32 for p in proof):
        raise ProofError("the consistency proof is empty or malformed")
    path = list(proof)
    if old & (old - 1) == 0:  # a power of two: the old root is the proof's implicit first node
        path.insert(0, old_root)
    fn, sn = old - 1, new - 1
    while fn % 2 == 1:
        fn, sn = fn >> 1, sn >> 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            raise ProofError("the consistency proof is longer than the tree is deep")
        if fn % 2 == 1 or fn == sn:
            fr, sr = node_hash(c, fr), node_hash(c, sr)
            while fn % 2 == 0 and fn != 0:
                fn, sn = fn >> 1, sn >> 1
        else:
            sr = node_hash(sr, c)
        fn, sn = fn >> 1, sn >> 1
    if sn != 0:
        raise ProofError("the consistency proof is shorter than the tree is deep")
    if fr != old_root:
        raise ProofError(f"the proof does not lead to the root of size {old}: the log was rewritten")
    if sr != new_root:
        raise ProofError(f"the proof does not lead to the root of size {new}: the log forked")


# ---------------------------------------------------------------------- signed notes
def _raw(public: Ed25519PublicKey) -> bytes:
    return public.public_bytes(Encoding.Raw, PublicFormat.Raw)


def key_id(name: str, public: Ed25519PublicKey, kind: int = NOTE_ED25519) -> bytes:
    """A note signer's key ID (C2SP signed-note): SHA-256(name || 0x0A || kind || key)[:4]."""
    return hashlib.sha256(name.encode() + b"\n" + bytes([kind]) + _raw(public)).digest()[:4]


def _check_name(name: str) -> None:
    if not name or any(c.isspace() for c in name) or "+" in name:
        raise ValueError(f"{name!r} is not a note key name (non-empty, no spaces, no '+')")


def sign_note(body: str, name: str, key: Ed25519PrivateKey) -> str:
    """`body` (newline-terminated lines) as a signed note, signed by `name`."""
    _check_name(name)
    sig = key.sign(body.encode())
    return f"{body}\n{_DASH}{name} {base64.b64encode(key_id(name, key.public_key()) + sig).decode()}\n"


def _b64(text: str) -> bytes:
    """Strict base64, or b"" for text that is not."""
    try:
        return base64.b64decode(text, validate=True)
    except ValueError:
        return b""


@dataclass(frozen=True)
class Checkpoint:
    """A tlog-checkpoint: origin, tree size, root hash, extension lines, and its signature lines."""

    origin: str
    size: int
    root: bytes
    extensions: tuple[str, ...] = ()
    signatures: tuple[tuple[str, bytes], ...] = ()
    """(key name, key ID + signature) per signature line, in order."""

    @property
    def body(self) -> str:
        lines = [self.origin, str(self.size), base64.b64encode(self.root).decode(), *self.extensions]
        return "".join(f"{ln}\n" for ln in lines)

    @classmethod
    def parse(cls, text: str) -> Checkpoint:
        """A signed checkpoint note; ProofError naming what is malformed."""
        body, sep, sigs = text.partition("\n\n")
        if not sep or not body:
            raise ProofError("a checkpoint is its body, a blank line, then signature lines")
        lines = body.split("\n")
        if len(lines) < 3 or not lines[0]:
            raise ProofError("a checkpoint body has an origin, a tree size and a root hash")
        if not lines[1].isascii() or not lines[1].isdigit() or (lines[1] != "0" and lines[1].startswith("0")):
            raise ProofError(f"tree size {lines[1]!r} is not a decimal number")
        root = _b64(lines[2])
        if len(root) != 32:
            raise ProofError("the root hash is not 32 bytes of base64")
        signatures = []
        for line in sigs.split("\n"):
            if not line:
                continue
            if not line.startswith(_DASH):
                raise ProofError(f"{line[:40]!r} is not a signature line")
            name, _, blob = line[len(_DASH):].rpartition(" ")
            raw = _b64(blob)
            if not name or len(raw) < 5:
                raise ProofError(f"signature line {line[:40]!r} is malformed")
            signatures.append((name, raw))
        if not signatures:
            raise ProofError("the checkpoint has no signature")
        return cls(lines[0], int(lines[1]), root, tuple(lines[3:]), tuple(signatures))

    def text(self) -> str:
        sigs = "".join(f"{_DASH}{n} {base64.b64encode(s).decode()}\n" for n, s in self.signatures)
        return f"{self.body}\n{sigs}"

    def signed_by(self, name: str, public: Ed25519PublicKey) -> bool:
        """Whether a signature line of `name` with its key ID verifies over the body."""
        kid = key_id(name, public)
        for n, raw in self.signatures:
            if n == name and raw[:4] == kid:
                try:
                    public.verify(raw[4:], self.body.encode())
                    return True
                except InvalidSignature:
                    return False
        return False


def verify_note(text: str, name: str, public: Ed25519PublicKey) -> Checkpoint:
    """The checkpoint `text` holds; ProofError unless `name`'s key signed it."""
    cp = Checkpoint.parse(text)
    if not cp.signed_by(name, public):
        raise ProofError(f"the checkpoint carries no valid signature of {name}")
    return cp


def _cosigned(body: str, timestamp: int) -> bytes:
    return f"cosignature/v1\ntime {timestamp}\n{body}".encode()


def cosign(checkpoint: Checkpoint, name: str, key: Ed25519PrivateKey, timestamp: int) -> Checkpoint:
    """The checkpoint with a witness's cosignature (C2SP tlog-cosignature, Ed25519) added."""
    _check_name(name)
    if not 0 <= timestamp < 2**63:
        raise ValueError("a cosignature's timestamp is seconds since the epoch, below 2^63")
    sig = key.sign(_cosigned(checkpoint.body, timestamp))
    raw = key_id(name, key.public_key(), COSIGNATURE_ED25519) + timestamp.to_bytes(8, "big") + sig
    return Checkpoint(checkpoint.origin, checkpoint.size, checkpoint.root, checkpoint.extensions,
                      (*checkpoint.signatures, (name, raw)))


def verify_cosignature(checkpoint: Checkpoint, name: str, public: Ed25519PublicKey) -> int:
    """The time of `name`'s valid cosignature of the checkpoint; ProofError if none."""
    kid = key_id(name, public, COSIGNATURE_ED25519)
    for n, raw in checkpoint.signatures:
        if n == name and raw[:4] == kid and len(raw) == 4 + 8 + 64:
            timestamp = int.from_bytes(raw[4:12], "big")
            try:
                public.verify(raw[12:], _cosigned(checkpoint.body, timestamp))
                return timestamp
            except InvalidSignature:
                break
    raise ProofError(f"the checkpoint carries no valid cosignature of {name}")
