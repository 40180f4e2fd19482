"""The size rules of issue 11, read from the source with `ast`: no function in src/missionwatch
longer than 60 lines, no class longer than 250, and no `# type: ignore` in the monitor core.

A size is what `ast` gives, end_lineno - lineno + 1: from the `def` or `class` line (decorators
not counted) to the last line of the body. Methods and nested functions count on their own
(`Gate.send`, `outer.inner`), and a class counts its methods too.
"""

from __future__ import annotations

import ast
import io
import re
import tokenize
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src" / "missionwatch"
CORE = SRC / "core"
LIMITS = {"function": 60, "class": 250}

_TYPE_IGNORE = re.compile(r"#\s*type:\s*ignore\b")


@dataclass(frozen=True)
class Block:
    """One function or class: where it is, what it is called, and how many lines it spans."""

    path: str
    name: str
    kind: str
    line: int
    lines: int

    @property
    def over(self) -> bool:
        return self.lines > LIMITS[self.kind]

    def __str__(self) -> str:
        return f"{self.path}:{self.line} {self.kind} {self.name}: {self.lines} lines (limit {LIMITS[self.kind]})"


def blocks(source: str, path: str) -> Iterator[Block]:
    """Every function and class of `source`, nested ones included, with dotted names."""

    def walk(node: ast.AST, prefix: str) -> Iterator[Block]:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                name = prefix + child.name
                kind = "class" if isinstance(child, ast.ClassDef) else "function"
                assert child.end_lineno is not None
                yield Block(path, name, kind, child.lineno, child.end_lineno - child.lineno + 1)
                yield from walk(child, name + ".")
            else:
                yield from walk(child, prefix)

    yield from walk(ast.parse(source), "")


def type_ignores(source: str) -> list[int]:
    """The lines of `source` with a `# type: ignore` comment (the words in a string do not count)."""
    tokens = tokenize.generate_tokens(io.StringIO(source).readline)
    return [t.start[0] for t in tokens if t.type == tokenize.COMMENT and _TYPE_IGNORE.search(t.string)]


def _files(root: Path) -> list[Path]:
    return sorted(root.rglob("*.py"))


def _relative(path: Path) -> str:
    return path.relative_to(ROOT).as_posix()


def _oversized() -> dict[tuple[str, str], Block]:
    found = (b for p in _files(SRC) for b in blocks(p.read_text(encoding="utf-8"), _relative(p)))
    return {(b.path, b.name): b for b in found if b.over}


def test_no_function_or_class_is_over_its_limit() -> None:
    over = _oversized()
    assert len(_files(SRC)) > 20  # the walk found the package
    found = [str(b) for _, b in sorted(over.items())]
    assert not found, "split these by their seams:\n  " + "\n  ".join(found)


def test_no_type_ignore_in_the_core() -> None:
    found = [f"{_relative(p)}:{line}" for p in _files(CORE) for line in type_ignores(p.read_text(encoding="utf-8"))]
    assert _files(CORE)
    assert not found, "the core type-checks without `# type: ignore`; remove it at:\n  " + "\n  ".join(found)


def test_the_measure() -> None:
    """The checks above can fail: sizes, names and limits on made-up source."""
    body = "    x = 1\n"
    source = (
        "@decorator\n"
        "def at_limit():\n" + body * 59
        + "def over():\n" + body * 60
        + "class Small:\n"
        "    async def method(self):\n"
        "        def inner():\n"
        "            pass\n"
        "        return inner\n"
        "class Big:\n" + body * 250
    )
    got = {b.name: (b.kind, b.line, b.lines, b.over) for b in blocks(source, "x.py")}
    assert got == {
        "at_limit": ("function", 2, 60, False),  # from `def`, the decorator not counted
        "over": ("function", 62, 61, True),
        "Small": ("class", 123, 5, False),
        "Small.method": ("function", 124, 4, False),
        "Small.method.inner": ("function", 125, 2, False),
        "Big": ("class", 128, 251, True),
    }
    assert str(next(b for b in blocks(source, "x.py") if b.name == "over")) == (
        "x.py:62 function over: 61 lines (limit 60)")
    marked = 'a = f()  # type: ignore[arg-type]\nb = "# type: ignore"\nc = g()  #type:ignore\nd = 1  # typed\n'
    assert type_ignores(marked) == [1, 3]
