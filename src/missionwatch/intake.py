"""The stateless half of the core: decode a message, canonicalize it, check its signatures.

`Intake.prepare` reads only the keyring, so it may run anywhere ahead of
`Monitor.feed`: on other threads, or (for the expensive part, Ed25519) in other
processes. `verify_ahead` does the latter for a stream of lines: worker
processes check the signatures and send back only what each check found (a
key_id or a `VerifyFailure`), which `prepare(line, signatures)` then takes in
place of checking again. The result is the same, record for record.
"""

from __future__ import annotations

import json
import multiprocessing
import os
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from multiprocessing.pool import AsyncResult
from typing import Any

from .admission import DEFAULT_LIMITS, LimitExceeded, Limits, check_value, loads_strict
from .canonical import CanonicalizationError, canonical_bytes, strip_envelope
from .codes import RejectionCode, reject_reason
from .records import IN_SCHEMAS, OUT_SCHEMAS, SCHEMA_BATCH
from .signing import ROLE_FOR_SCHEMA, Keyring, VerifyFailure

__all__ = ["Intake", "Prepared", "Reject", "Signature", "Signatures", "default_workers", "verify_ahead"]

Signature = str | VerifyFailure | None
"""What a signature check found: the key_id that verified, why none did, or None (unsigned)."""
Signatures = tuple[Signature, tuple[Signature, ...]]
"""The message's own signature check, and those of its batch items (empty if not a batch)."""


class Reject(Exception):
    """An input refused with a closed-set code and its one-sentence reason."""

    def __init__(self, code: RejectionCode, detail: Any = "") -> None:
        self.code = code
        self.reason = reject_reason(code, detail)

    @classmethod
    def of(cls, exc: LimitExceeded) -> Reject:
        return cls(exc.code, exc.args[0] if exc.args else "")


@dataclass(frozen=True)
class Prepared:
    """A message decoded, canonicalized and signature-checked (see `Intake.prepare`)."""

    record: dict[str, Any] | None = None
    payload: bytes | None = None
    schema: str | None = None
    signer: Signature = None
    reject: Reject | None = None
    items: tuple[Prepared, ...] = ()

    def signatures(self) -> Signatures | None:
        """What was found of the signatures; None when the message was refused before any check."""
        if self.reject is not None:
            return None
        return self.signer, tuple(i.signer for i in self.items)


class Intake:
    """Decode, canonicalize and signature-check messages against one keyring."""

    def __init__(self, keyring: Keyring, limits: Limits = DEFAULT_LIMITS) -> None:
        self.keyring = keyring
        self.limits = limits

    def prepare(self, raw: str | bytes | dict[str, Any], signatures: Signatures | None = None) -> Prepared:
        """Prepare one message. `signatures`, if given, is what `prepare` of the same
        message found with the same keyring (e.g. in another process), and is used
        instead of checking again."""
        try:
            record = self._decode(raw)
            schema = self._check_schema(record)
            payload = self._payload(record, whole=schema == SCHEMA_BATCH)
            items = record.get("items") if schema == SCHEMA_BATCH else None
            if isinstance(items, list) and len(items) > self.limits.max_batch_items:
                raise Reject("too_many_items", f"{len(items):,} items, more than the "
                             f"{self.limits.max_batch_items:,} allowed")
        except Reject as r:
            return Prepared(reject=r)
        known = signatures if signatures is not None and (
            len(signatures[1]) == (len(items) if isinstance(items, list) else 0)) else None
        if schema != SCHEMA_BATCH:
            signer = known[0] if known else self._check_signature(record, schema, payload)
            return Prepared(record, payload, schema, signer)
        if known:
            signer = known[0]
        elif record.get("signature") is None:
            signer = None
        else:
            sig = record["signature"]
            key_id = sig.get("key_id") if isinstance(sig, dict) else None
            role = self.keyring.role_of(key_id) if isinstance(key_id, str) else None
            if role is None:
                signer = VerifyFailure("unknown_key", repr(key_id))
            else:
                signer = self.keyring.verify(record, role, payload=payload)
        prepared: tuple[Prepared, ...] = ()
        if isinstance(items, list):
            prepared = tuple(self._prepare_item(item, known[1][i] if known else False)
                             for i, item in enumerate(items))
        return Prepared(record, payload, schema, signer, None, prepared)

    def _prepare_item(self, item: Any, known: Signature | bool) -> Prepared:
        try:
            if not isinstance(item, dict):
                raise Reject("not_an_object", "array" if isinstance(item, list) else type(item).__name__)
            if item.get("schema") == SCHEMA_BATCH:
                raise Reject("nested_batch")
            schema = self._check_schema(item)
            payload = self._payload(item)
        except Reject as r:
            return Prepared(reject=r)
        signer = self._check_signature(item, schema, payload) if known is False else known
        assert not isinstance(signer, bool)
        return Prepared(item, payload, schema, signer)

    def _check_signature(self, record: dict[str, Any], schema: str, payload: bytes) -> Signature:
        if record.get("signature") is None:
            return None
        return self.keyring.verify(record, ROLE_FOR_SCHEMA[schema], payload=payload)

    def _decode(self, raw: str | bytes | dict[str, Any]) -> dict[str, Any]:
        limit = self.limits.max_message_bytes
        if isinstance(raw, bytes | bytearray):
            self._check_size(len(raw))
            try:
                raw = bytes(raw).decode("utf-8")
            except UnicodeDecodeError as exc:
                raise Reject("malformed_json", f"not UTF-8 text ({exc.reason} at byte {exc.start})") from None
        elif isinstance(raw, str) and len(raw) > limit // 4:
            self._check_size(len(raw.encode("utf-8", "surrogatepass")))
        try:
            if isinstance(raw, str):
                raw = loads_strict(raw, self.limits)
            else:
                check_value(raw, self.limits)
        except LimitExceeded as exc:
            raise Reject.of(exc) from None
        except json.JSONDecodeError as exc:
            raise Reject("malformed_json", f"{exc.msg} at line {exc.lineno} column {exc.colno}") from None
        except (ValueError, RecursionError) as exc:
            raise Reject("malformed_json", str(exc)[:200] or type(exc).__name__) from None
        if not isinstance(raw, dict):
            kind = {list: "array", str: "string", bool: "boolean", type(None): "null"}.get(type(raw), "number")
            raise Reject("not_an_object", kind)
        return raw

    def _check_size(self, size: int) -> None:
        if size > self.limits.max_message_bytes:
            raise Reject("message_too_large", f"a message of {size:,} bytes is longer than the "
                         f"{self.limits.max_message_bytes:,} allowed")

    @staticmethod
    def _check_schema(record: dict[str, Any]) -> str:
        schema = record.get("schema")
        if schema is None:
            raise Reject("missing_schema")
        if not isinstance(schema, str):
            raise Reject("unknown_schema", repr(schema))
        if schema in OUT_SCHEMAS:
            raise Reject("not_an_input", schema)
        if schema not in IN_SCHEMAS:
            raise Reject("unknown_schema", repr(schema))
        return schema

    def _payload(self, record: dict[str, Any], *, whole: bool = False) -> bytes:
        """The canonical bytes of `record`; a single record (not a batch envelope: `whole`)
        longer than `max_record_bytes` is refused."""
        try:
            payload = canonical_bytes(strip_envelope(record))
        except (CanonicalizationError, RecursionError) as exc:
            raise Reject("not_canonical", str(exc) or "nested too deeply") from None
        if not whole and len(payload) > self.limits.max_record_bytes:
            raise Reject("message_too_large", f"a record of {len(payload):,} bytes is longer than the "
                         f"{self.limits.max_record_bytes:,} allowed for one record")
        return payload


# ------------------------------------------------------- verification in workers
_worker: Intake | None = None


def _init_worker(keyring_json: dict[str, Any], limits_json: dict[str, Any]) -> None:
    global _worker
    _worker = Intake(Keyring.from_json(keyring_json), Limits.model_validate(limits_json))


def _check_chunk(lines: list[str | bytes]) -> list[Signatures | None]:
    assert _worker is not None
    return [_worker.prepare(line).signatures() if line.strip() else None for line in lines]


def default_workers() -> int:
    """Processes that check signatures beside the core: one per core the core leaves free, at most 4."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(0, min(cores - 1, 4))


def verify_ahead(lines: Iterable[str | bytes], keyring: Keyring, workers: int, *, chunk: int = 256,
                 window: int = 8, limits: Limits = DEFAULT_LIMITS,
                 ) -> Iterator[tuple[str | bytes, Signatures | None]]:
    """Yield each line with its signatures checked by `workers` processes, in order.

    At most `window` chunks per worker are in flight, so memory stays bounded on
    long streams. With `workers` < 1 or an empty keyring (nothing could verify),
    yields None for every line: `prepare` then checks in-process.
    """
    if workers < 1 or not keyring.keys:
        for line in lines:
            yield line, None
        return
    methods = multiprocessing.get_all_start_methods()
    # fork starts at once with everything imported; spawn where fork is missing.
    ctx = multiprocessing.get_context("fork" if "fork" in methods else "spawn")
    pending: deque[tuple[list[str | bytes], AsyncResult[list[Signatures | None]]]] = deque()
    with ctx.Pool(workers, initializer=_init_worker, initargs=(keyring.to_json(), limits.model_dump())) as pool:
        batch: list[str | bytes] = []
        for line in lines:
            batch.append(line)
            if len(batch) == chunk:
                pending.append((batch, pool.apply_async(_check_chunk, (batch,))))
                batch = []
                if len(pending) >= window * workers:
                    done, result = pending.popleft()
                    yield from zip(done, result.get(), strict=True)
        if batch:
            pending.append((batch, pool.apply_async(_check_chunk, (batch,))))
        while pending:
            done, result = pending.popleft()
            yield from zip(done, result.get(), strict=True)
