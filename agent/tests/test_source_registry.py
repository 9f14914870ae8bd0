"""A source is one module (sources/__init__.py): outside `clawtrace/sources/`, no code names a
source. Everything that is one source's own (its directories and how they are found, the
option and config key users point it with, what wakes the live scan, what `doctor` says of it)
is declared by its class, and the rest of ClawTrace goes through the registry, `SOURCES`.

What is checked is code: identifiers and string literals, f-strings included. Comments and
docstrings may name a source as an example; they decide nothing.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import clawtrace
import pytest
from clawtrace.sources import SOURCES

PACKAGE = Path(clawtrace.__file__).parent
# The sources' names, their directories' names and the names they had before.
SOURCE_NAME = re.compile(r"claude|openclaw|clawdbot|moltbot|moldbot", re.IGNORECASE)

# (file, the literal or identifier as written): why it may name a source.
ALLOWED = {
    ("pricing.py", "claude-code"): (
        "a provider id as OpenClaw logs it (its Claude Code provider), mapped to Anthropic's "
        "prices: a provider, not this source"
    ),
}


def _docstrings(tree: ast.AST) -> set[int]:
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                found.add(id(body[0].value))
    return found


def _words(tree: ast.AST) -> list[tuple[int, str]]:
    """(line, text) of every identifier and string literal of `tree` but its docstrings."""
    skip = _docstrings(tree)
    words: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        line = getattr(node, "lineno", 0)
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in skip:
            words.append((line, node.value))
        elif isinstance(node, ast.Name):
            words.append((line, node.id))
        elif isinstance(node, ast.Attribute):
            words.append((line, node.attr))
        elif isinstance(node, ast.arg) or (isinstance(node, ast.keyword) and node.arg):
            words.append((line, node.arg))
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            words.append((line, node.name))
        elif isinstance(node, ast.alias):
            words.append((line, node.asname or node.name))
        elif isinstance(node, ast.ImportFrom) and node.module:
            words.append((line, node.module))
    return words


def source_names_outside_sources(package: Path = PACKAGE) -> list[str]:
    found = []
    for path in sorted(package.rglob("*.py")):
        rel = path.relative_to(package)
        if rel.parts[0] == "sources":
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for line, text in _words(tree):
            if SOURCE_NAME.search(text) and (rel.as_posix(), text) not in ALLOWED:
                found.append(f"{rel}:{line}: {text!r}")
    return found


def test_no_code_outside_the_sources_names_a_source():
    found = source_names_outside_sources()
    assert not found, "source names outside clawtrace/sources/:\n" + "\n".join(found)


def test_the_check_sees_a_name_in_code_and_not_in_a_comment_or_docstring(tmp_path):
    (tmp_path / "sources").mkdir()
    (tmp_path / "sources" / "mine.py").write_text('NAME = "claude-code"\n')
    (tmp_path / "fine.py").write_text('"""Reads Claude Code logs."""\n# openclaw\nx = 1\n')
    (tmp_path / "named.py").write_text('def f(claude_dirs):\n    return f"{claude_dirs}"\n')
    (tmp_path / "literal.py").write_text('ROOT = "~/.openclaw"\n')
    assert sorted(source_names_outside_sources(tmp_path)) == [
        "literal.py:1: '~/.openclaw'",
        "named.py:1: 'claude_dirs'",
        "named.py:2: 'claude_dirs'",
    ]


def test_every_allowed_name_is_still_there():
    """(An exception whose code went stays no longer than the code.)"""
    seen = set()
    for path in PACKAGE.rglob("*.py"):
        rel = path.relative_to(PACKAGE).as_posix()
        for _line, text in _words(ast.parse(path.read_text(encoding="utf-8"))):
            seen.add((rel, text))
    assert set(ALLOWED) <= seen


@pytest.mark.parametrize("name", list(SOURCES))
def test_each_source_declares_what_users_point_it_with(name):
    source = SOURCES[name]
    assert source.name == name
    assert source.dirs_key.endswith("_dirs")
    assert source.dir_option.startswith("--") and source.dir_help.endswith("(repeatable).")
    assert source.title
