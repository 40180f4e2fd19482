"""Shells that persist what the core produced: the analysts' DuckDB ledger."""

from .duck import DEFAULT_BATCH_BYTES, DEFAULT_BATCH_ROWS, LedgerWriter, write_ledger

__all__ = ["DEFAULT_BATCH_BYTES", "DEFAULT_BATCH_ROWS", "LedgerWriter", "write_ledger"]
