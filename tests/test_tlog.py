"""The transparency log's Merkle tree, proofs and signed notes: the RFC 6962/9162 reference
vectors (Certificate Transparency's), a second implementation written from the RFC's
recursive definitions, every corruption of a proof refused, and notes that round-trip."""

from __future__ import annotations

import hashlib
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from missionwatch.tlog import (
    EMPTY_ROOT,
    Checkpoint,
    MerkleTree,
    ProofError,
    cosign,
    leaf_hash,
    sign_note,
    verify_consistency,
    verify_cosignature,
    verify_inclusion,
    verify_note,
)

LEAVES = [bytes.fromhex(h) for h in ("", "00", "10", "2021", "3031", "40414243", "5051525354555657",
                                     "606162636465666768696a6b6c6d6e6f")]
ROOTS = [bytes.fromhex(h) for h in (
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328")]
H = bytes.fromhex
INCLUSION = [  # (leaf index, tree size, proof): Certificate Transparency's vectors
    (0, 8, [H("96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7"),
            H("5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e"),
            H("6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4")]),
    (5, 8, [H("bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"),
            H("ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0"),
            H("d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7")]),
    (2, 3, [H("fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125")]),
    (1, 5, [H("6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d"),
            H("5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e"),
            H("bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b")]),
]
CONSISTENCY = [  # (old size, new size, proof)
    (1, 8, [H("96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7"),
            H("5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e"),
            H("6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4")]),
    (6, 8, [H("0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a"),
            H("ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0"),
            H("d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7")]),
    (2, 5, [H("5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e"),
            H("bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b")]),
]


def reference() -> MerkleTree:
    tree = MerkleTree()
    for leaf in LEAVES:
        tree.append(leaf_hash(leaf))
    return tree


# an independent implementation: RFC 9162's recursive definitions, as written there
def mth(d: list[bytes]) -> bytes:
    if not d:
        return hashlib.sha256(b"").digest()
    if len(d) == 1:
        return hashlib.sha256(b"\x00" + d[0]).digest()
    k = 1
    while k * 2 < len(d):
        k *= 2
    return hashlib.sha256(b"\x01" + mth(d[:k]) + mth(d[k:])).digest()


def path(m: int, d: list[bytes]) -> list[bytes]:
    if len(d) == 1:
        return []
    k = 1
    while k * 2 < len(d):
        k *= 2
    return [*path(m, d[:k]), mth(d[k:])] if m < k else [*path(m - k, d[k:]), mth(d[:k])]


def subproof(m: int, d: list[bytes], b: bool) -> list[bytes]:
    if m == len(d):
        return [] if b else [mth(d)]
    k = 1
    while k * 2 < len(d):
        k *= 2
    return [*subproof(m, d[:k], b), mth(d[k:])] if m <= k else [*subproof(m - k, d[k:], False), mth(d[:k])]


def test_roots_and_proofs_match_the_reference_vectors() -> None:
    tree = reference()
    assert tree.root(0) == EMPTY_ROOT
    assert [tree.root(n) for n in range(1, 9)] == ROOTS
    for index, size, proof in INCLUSION:
        assert tree.inclusion(index, size) == proof
        verify_inclusion(index, size, leaf_hash(LEAVES[index]), proof, ROOTS[size - 1])
    for old, new, proof in CONSISTENCY:
        assert tree.consistency(old, new) == proof
        verify_consistency(old, new, ROOTS[old - 1], ROOTS[new - 1], proof)


def test_every_proof_equals_the_recursive_definitions() -> None:
    data = [i.to_bytes(4, "big") * (i % 3 + 1) for i in range(70)]
    tree = MerkleTree()
    for x in data:
        tree.append(leaf_hash(x))
    for n in range(1, 71):
        root = tree.root(n)
        assert root == mth(data[:n])
        for m in range(n):
            proof = tree.inclusion(m, n)
            assert proof == path(m, data[:n])
            verify_inclusion(m, n, leaf_hash(data[m]), proof, root)
        for m in range(1, n + 1):
            proof = tree.consistency(m, n)
            assert proof == (subproof(m, data[:n], True) if m < n else [])
            verify_consistency(m, n, tree.root(m), root, proof)


def corrupt(proof: list[bytes], root: bytes) -> list[list[bytes]]:
    out = [[*proof, b"\x00" * 32], [*proof, root], [root, *proof]]
    out += [proof[:-1]] if proof else []
    for i in range(len(proof)):
        flipped = list(proof)
        flipped[i] = bytes([flipped[i][0] ^ 8]) + flipped[i][1:]
        out.append(flipped)
    return out


@pytest.mark.parametrize(("index", "size", "proof"), INCLUSION)
def test_a_corrupted_inclusion_proof_is_refused(index: int, size: int, proof: list[bytes]) -> None:
    root, leaf = ROOTS[size - 1], leaf_hash(LEAVES[index])
    probes: list[tuple[Any, ...]] = [(index - 1, size, leaf, proof, root), (index + 1, size, leaf, proof, root),
                                     (index ^ 2, size, leaf, proof, root), (index, size * 2, leaf, proof, root),
                                     (index, size // 2, leaf, proof, root), (index, size, leaf_hash(b"x"), proof, root),
                                     (index, size, leaf, proof, EMPTY_ROOT)]
    probes += [(index, size, leaf, p, root) for p in corrupt(proof, root)]
    for probe in probes:
        with pytest.raises(ProofError):
            verify_inclusion(*probe)


@pytest.mark.parametrize(("old", "new", "proof"), CONSISTENCY)
def test_a_corrupted_consistency_proof_is_refused(old: int, new: int, proof: list[bytes]) -> None:
    r1, r2 = ROOTS[old - 1], ROOTS[new - 1]
    probes: list[tuple[Any, ...]] = [(old - 1, new, r1, r2, proof), (old + 1, new, r1, r2, proof),
                                     (old, new * 2, r1, r2, proof), (old, new, r2, r1, proof),
                                     (old, new, EMPTY_ROOT, r2, proof), (old, new, r1, EMPTY_ROOT, proof),
                                     (old, new, r1, r2, []), (new, old, r2, r1, proof)]
    probes += [(old, new, r1, r2, p) for p in corrupt(proof, r1)]
    for probe in probes:
        if probe[0] in (0,) or (probe[0] == probe[1] and probe[2] == probe[3]):
            continue  # trivially consistent sizes
        with pytest.raises(ProofError):
            verify_consistency(*probe)
    with pytest.raises(ProofError, match="forked"):
        verify_consistency(3, 3, ROOTS[2], ROOTS[3], [])


def test_checkpoints_sign_parse_and_cosign() -> None:
    key, witness = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
    cp = Checkpoint("missionwatch.example/m-1", 8, ROOTS[7], ("seq 12",))
    text = sign_note(cp.body, "missionwatch.example/monitor", key)
    assert text.startswith("missionwatch.example/m-1\n8\nXcnaeacGWamtVZy3Ad7ZoqudgjqtL0lgz+Nw7/RgQyg=\nseq 12\n\n\u2014 ")
    got = verify_note(text, "missionwatch.example/monitor", key.public_key())
    assert (got.origin, got.size, got.root, got.extensions) == (cp.origin, 8, ROOTS[7], ("seq 12",))
    assert got.text() == text
    with pytest.raises(ProofError):
        verify_note(text, "missionwatch.example/monitor", witness.public_key())
    with pytest.raises(ProofError):
        verify_note(text.replace("\n8\n", "\n9\n"), "missionwatch.example/monitor", key.public_key())
    both = cosign(got, "witness.example/w1", witness, 1_700_000_000)
    assert verify_cosignature(Checkpoint.parse(both.text()), "witness.example/w1", witness.public_key()) == 1_700_000_000
    assert Checkpoint.parse(both.text()).signed_by("missionwatch.example/monitor", key.public_key())
    with pytest.raises(ProofError):
        verify_cosignature(got, "witness.example/w1", witness.public_key())
    for bad in ("", "origin\n8\n", "o\nx\n" + "A" * 44 + "\n\n\u2014 k AAAAAAAA\n", "o\n8\nshort\n\n\u2014 k AAAAAAAA\n"):
        with pytest.raises(ProofError):
            Checkpoint.parse(bad)
