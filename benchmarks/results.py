"""benchmarks/RESULTS.md: each script owns one "## <name>" section and rewrites only that."""

from __future__ import annotations

from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "RESULTS.md"


def write_section(name: str, section: str) -> None:
    """Replace the section "## `name`" of RESULTS.md by `section` (which starts with that
    heading), or append it; the other sections stay as they are."""
    text = RESULTS.read_text() if RESULTS.exists() else "# Benchmark results\n\nWritten by the scripts in benchmarks/.\n"
    head, _, rest = text.partition(f"## {name}")
    tail = rest.split("\n## ", 1)[1] if "\n## " in rest else ""
    RESULTS.write_text(head.rstrip() + "\n\n" + section + (("\n## " + tail) if tail else ""))
