"""Ed25519 keys, keyrings with roles, signing and verification (CONTRACT section 2).

A keyring file is `{"keys": [{"key_id", "alg": "ed25519", "public_key": base64,
"role": "gate" | "reviewer" | "monitor"}]}`. Private keys are PEM (PKCS#8).
"""

from __future__ import annotations

import base64
import binascii
import fnmatch
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from .canonical import canonical_bytes, strip_envelope
from .records import (
    SCHEMA_ACTION,
    SCHEMA_CONTROL,
    SCHEMA_ESCALATION,
    SCHEMA_MISSION,
    SCHEMA_OUTCOME,
    SCHEMA_REVIEW,
    SCHEMA_STRATEGY,
)

__all__ = [
    "ROLE_FOR_SCHEMA",
    "KeyError_",
    "KeyScope",
    "Keyring",
    "Role",
    "Signer",
    "VerifyFailure",
    "load_private_key",
    "write_private_key",
]

Role = Literal["gate", "reviewer", "monitor"]
ROLES: tuple[Role, ...] = ("gate", "reviewer", "monitor")

# Which role may sign which kind of record.
ROLE_FOR_SCHEMA: dict[str, Role] = {
    SCHEMA_MISSION: "gate",
    SCHEMA_ACTION: "gate",
    SCHEMA_OUTCOME: "gate",
    SCHEMA_REVIEW: "reviewer",
    SCHEMA_STRATEGY: "monitor",
    SCHEMA_ESCALATION: "monitor",
    SCHEMA_CONTROL: "monitor",
}


class KeyError_(ValueError):
    """A key or keyring file that cannot be used; the message names the file and why."""


@dataclass(frozen=True)
class VerifyFailure:
    """Why a signature was not accepted: a rejection code and the detail for its sentence."""

    code: Literal["signature_missing", "unknown_key", "wrong_role", "unsupported_alg", "bad_signature"]
    detail: str


@dataclass(frozen=True)
class KeyScope:
    """What a key may sign beyond its role (optional keyring fields of an entry):
    `missions`, shell-style patterns of the mission_ids it may speak for (None: any);
    `decisions`, the review decisions it may make (None: any); `reviewer`, the one
    reviewer name its reviews must carry (None: any)."""

    missions: tuple[str, ...] | None = None
    decisions: tuple[str, ...] | None = None
    reviewer: str | None = None
    specs: tuple[str, ...] | None = None
    """Shell-style patterns of the spec names whose missions it may review (None: any)."""
    owners: tuple[str, ...] | None = None
    """Shell-style patterns of the owners whose missions it may review (None: any); a mission's
    owner is its registration's, else its spec's."""

    def covers_mission(self, mission_id: str) -> bool:
        return self.missions is None or any(fnmatch.fnmatchcase(mission_id, p) for p in self.missions)

    def covers_spec(self, spec: str) -> bool:
        return self.specs is None or any(fnmatch.fnmatchcase(spec, p) for p in self.specs)

    def covers_owner(self, owner: str | None) -> bool:
        return self.owners is None or (owner is not None and any(fnmatch.fnmatchcase(owner, p)
                                                                 for p in self.owners))

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.missions is not None:
            out["missions"] = list(self.missions)
        if self.decisions is not None:
            out["decisions"] = list(self.decisions)
        if self.reviewer is not None:
            out["reviewer"] = self.reviewer
        if self.specs is not None:
            out["specs"] = list(self.specs)
        if self.owners is not None:
            out["owners"] = list(self.owners)
        return out


ANY_SCOPE = KeyScope()
DECISIONS = ("acknowledge", "resume", "pause", "terminate")


def _scope_of(entry: dict[str, Any], where: str) -> KeyScope:
    def names(field_: str, allowed: tuple[str, ...] | None = None) -> tuple[str, ...] | None:
        v = entry.get(field_)
        if v is None:
            return None
        if not isinstance(v, list) or not all(isinstance(x, str) and x for x in v):
            raise KeyError_(f"{where}.{field_} must be a list of non-empty strings")
        bad = [x for x in v if allowed is not None and x not in allowed]
        if bad:
            raise KeyError_(f"{where}.{field_} may hold only {', '.join(allowed or ())}; got {bad[0]!r}")
        return tuple(v)

    reviewer = entry.get("reviewer")
    if reviewer is not None and (not isinstance(reviewer, str) or not reviewer):
        raise KeyError_(f"{where}.reviewer must be a non-empty string")
    return KeyScope(names("missions"), names("decisions", DECISIONS), reviewer, names("specs"), names("owners"))


@dataclass
class Keyring:
    """Public keys by key_id, each with its role and (optionally) a narrower scope."""

    keys: dict[str, tuple[Ed25519PublicKey, Role]] = field(default_factory=dict)
    scopes: dict[str, KeyScope] = field(default_factory=dict)

    def add(self, key_id: str, public_key: Ed25519PublicKey, role: Role,
            scope: KeyScope | None = None) -> None:
        self.keys[key_id] = (public_key, role)
        if scope is not None and scope != ANY_SCOPE:
            self.scopes[key_id] = scope
        else:
            self.scopes.pop(key_id, None)

    def scope_of(self, key_id: str | None) -> KeyScope:
        return self.scopes.get(key_id, ANY_SCOPE) if key_id is not None else ANY_SCOPE

    def role_of(self, key_id: str) -> Role | None:
        entry = self.keys.get(key_id)
        return entry[1] if entry else None

    @classmethod
    def load(cls, path: str | Path) -> Keyring:
        path = Path(path)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except OSError as exc:
            raise KeyError_(f"{path}: cannot read the keyring ({exc.strerror})") from None
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise KeyError_(f"{path}: the keyring is not valid JSON ({exc})") from None
        return cls.from_json(data, source=str(path))

    @classmethod
    def from_json(cls, data: Any, *, source: str = "keyring") -> Keyring:
        if not isinstance(data, dict) or not isinstance(data.get("keys"), list):
            raise KeyError_(f'{source}: a keyring is an object with a "keys" list')
        ring = cls()
        for i, entry in enumerate(data["keys"]):
            where = f"{source}: keys[{i}]"
            if not isinstance(entry, dict):
                raise KeyError_(f"{where} is not an object")
            key_id, alg, pub, role = (entry.get(k) for k in ("key_id", "alg", "public_key", "role"))
            if not isinstance(key_id, str) or not key_id:
                raise KeyError_(f"{where}.key_id must be a non-empty string")
            if alg != "ed25519":
                raise KeyError_(f"{where}.alg must be \"ed25519\", got {alg!r}")
            if role not in ROLES:
                raise KeyError_(f"{where}.role must be one of {', '.join(ROLES)}, got {role!r}")
            try:
                raw = base64.b64decode(str(pub), validate=True)
                key = Ed25519PublicKey.from_public_bytes(raw)
            except (binascii.Error, ValueError):
                raise KeyError_(
                    f"{where}.public_key must be the base64 of 32 raw Ed25519 bytes"
                ) from None
            if key_id in ring.keys:
                raise KeyError_(f"{where}.key_id {key_id!r} appears twice")
            ring.add(key_id, key, role, _scope_of(entry, where))
        return ring

    def to_json(self) -> dict[str, Any]:
        return {
            "keys": [
                {
                    "key_id": key_id,
                    "alg": "ed25519",
                    "public_key": base64.b64encode(
                        pub.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
                    ).decode(),
                    "role": role,
                    **self.scope_of(key_id).to_json(),
                }
                for key_id, (pub, role) in sorted(self.keys.items())
            ]
        }

    def verify(
        self, record: dict[str, Any], allowed: Role, *, payload: bytes | None = None
    ) -> VerifyFailure | str:
        """Check `record["signature"]` over its canonical bytes; return the key_id or a failure.

        `payload` may pass the canonical bytes when the caller already has them.
        """
        sig = record.get("signature")
        if sig is None:
            return VerifyFailure("signature_missing", "")
        if not isinstance(sig, dict):
            return VerifyFailure("bad_signature", "(signature is not an object)")
        key_id, alg, value = sig.get("key_id"), sig.get("alg"), sig.get("value")
        if alg != "ed25519":
            return VerifyFailure("unsupported_alg", repr(alg))
        entry = self.keys.get(key_id) if isinstance(key_id, str) else None
        if entry is None:
            return VerifyFailure("unknown_key", repr(key_id))
        pub, role = entry
        if role != allowed:
            return VerifyFailure(
                "wrong_role",
                f"key {key_id!r} has role {role!r}, but this record must be signed by a {allowed!r} key",
            )
        try:
            raw = base64.b64decode(str(value), validate=True)
        except (binascii.Error, ValueError):
            return VerifyFailure("bad_signature", repr(key_id))
        if payload is None:
            payload = canonical_bytes(strip_envelope(record))
        try:
            pub.verify(raw, payload)
        except InvalidSignature:
            return VerifyFailure("bad_signature", repr(key_id))
        return str(key_id)


class Signer:
    """Signs records with one Ed25519 private key under a key_id."""

    def __init__(self, key: Ed25519PrivateKey, key_id: str) -> None:
        self.key = key
        self.key_id = key_id

    @classmethod
    def generate(cls, key_id: str) -> Signer:
        return cls(Ed25519PrivateKey.generate(), key_id)

    @property
    def public_key(self) -> Ed25519PublicKey:
        return self.key.public_key()

    def sign(self, record: dict[str, Any]) -> dict[str, Any]:
        """Return a copy of `record` with `signature` set over its canonical bytes."""
        body = strip_envelope(record)
        value = base64.b64encode(self.key.sign(canonical_bytes(body))).decode()
        return {**body, "signature": {"key_id": self.key_id, "alg": "ed25519", "value": value}}

    def seal(self, record: dict[str, Any]) -> dict[str, Any]:
        """Return a copy with `hash` and `signature` set, as out records carry them."""
        body = strip_envelope(record)
        payload = canonical_bytes(body)  # what `record_hash(body)` hashes: one walk for both
        value = base64.b64encode(self.key.sign(payload)).decode()
        return {
            **body,
            "hash": "sha256:" + hashlib.sha256(payload).hexdigest(),
            "signature": {"key_id": self.key_id, "alg": "ed25519", "value": value},
        }

    def keyring_entry(self, role: Role) -> Keyring:
        ring = Keyring()
        ring.add(self.key_id, self.public_key, role)
        return ring


def load_private_key(path: str | Path, key_id: str | None = None) -> Signer:
    """Load a PEM (PKCS#8) Ed25519 private key; key_id defaults to the file's stem."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise KeyError_(f"{path}: cannot read the private key ({exc.strerror})") from None
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as exc:
        raise KeyError_(f"{path}: not an unencrypted PEM (PKCS#8) private key ({exc})") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise KeyError_(f"{path}: the private key is not an Ed25519 key")
    return Signer(key, key_id or path.stem)


def write_private_key(signer: Signer, path: str | Path) -> None:
    pem = signer.key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    Path(path).write_bytes(pem)
