"""Shells that persist what the core produced: the analysts' DuckDB ledger."""

from .duck import write_ledger

__all__ = ["write_ledger"]
