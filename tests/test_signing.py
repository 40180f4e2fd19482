"""Sign/verify round trips and every way a signature can be wrong."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from missionwatch.signing import (
    KeyError_,
    Keyring,
    Signer,
    VerifyFailure,
    load_private_key,
    write_private_key,
)


def test_round_trip_and_keyring_file(tmp_path: Path, keys: dict[str, Signer], keyring: Keyring) -> None:
    rec = keys["gate"].sign({"schema": "missionwatch/action@1", "x": 1.5})
    assert keyring.verify(rec, "gate") == "gate-1"
    path = tmp_path / "ring.json"
    path.write_text(json.dumps(keyring.to_json()))
    assert Keyring.load(path).verify(rec, "gate") == "gate-1"
    write_private_key(keys["gate"], tmp_path / "gate-1.pem")
    again = load_private_key(tmp_path / "gate-1.pem")
    assert again.key_id == "gate-1" and again.sign({"a": 1}) == keys["gate"].sign({"a": 1})


@pytest.mark.parametrize(
    ("mutate", "code"),
    [
        (lambda r: r.pop("signature"), "signature_missing"),
        (lambda r: r["signature"].update(key_id="nobody"), "unknown_key"),
        (lambda r: r["signature"].update(alg="rsa"), "unsupported_alg"),
        (lambda r: r.update(x=2), "bad_signature"),
        (lambda r: r["signature"].update(value="!!notbase64"), "bad_signature"),
        (lambda r: r["signature"].update(value=base64.b64encode(b"0" * 64).decode()), "bad_signature"),
    ],
)
def test_each_way_a_signature_is_wrong(keys: dict[str, Signer], keyring: Keyring, mutate, code: str) -> None:
    rec = keys["gate"].sign({"schema": "missionwatch/action@1", "x": 1})
    mutate(rec)
    result = keyring.verify(rec, "gate")
    assert isinstance(result, VerifyFailure) and result.code == code


def test_wrong_role(keys: dict[str, Signer], keyring: Keyring) -> None:
    rec = keys["gate"].sign({"schema": "missionwatch/review@1"})
    result = keyring.verify(rec, "reviewer")
    assert isinstance(result, VerifyFailure) and result.code == "wrong_role"


def test_signed_by_a_key_outside_the_ring(keys: dict[str, Signer], keyring: Keyring) -> None:
    rec = keys["stranger"].sign({"a": 1})
    result = keyring.verify(rec, "gate")
    assert isinstance(result, VerifyFailure) and result.code == "unknown_key"


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("not json", "not valid JSON"),
        ('{"keys": {}}', '"keys" list'),
        ('{"keys": [{"key_id": "a", "alg": "rsa", "public_key": "", "role": "gate"}]}', "alg"),
        ('{"keys": [{"key_id": "a", "alg": "ed25519", "public_key": "AAA=", "role": "gate"}]}', "32 raw"),
        ('{"keys": [{"key_id": "a", "alg": "ed25519", "public_key": "", "role": "boss"}]}', "role"),
    ],
)
def test_bad_keyring_names_file_and_field(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "ring.json"
    path.write_text(content)
    with pytest.raises(KeyError_, match=message) as exc:
        Keyring.load(path)
    assert str(path) in str(exc.value)
