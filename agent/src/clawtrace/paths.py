"""Where ClawTrace keeps its own files and where the agents' session logs live."""

from __future__ import annotations

import os
from pathlib import Path

# --- names that are not UTF-8 -----------------------------------------------------------------
#
# Linux file names are bytes; Python shows the ones that are not UTF-8 with surrogate escapes,
# which neither SQLite's text nor JSON can hold. A path is stored as it is on disk (as bytes
# when it is not UTF-8: a path must find its file again); a name shown or grouped by (a project
# or session label, a path in a report) has replacement characters instead.


def path_to_store(path: str) -> str | bytes:
    """The path as the store keeps it: text, or its bytes when it is not UTF-8."""
    try:
        path.encode("utf-8")
    except UnicodeEncodeError:
        return os.fsencode(path)
    return path


def path_from_store(value: str | bytes) -> str:
    """What `path_to_store` kept, as a path again (surrogate escapes and all)."""
    return os.fsdecode(value) if isinstance(value, bytes) else value


def label(name: str | bytes) -> str:
    """A name to show, store as a label or put in JSON: the bytes that are not UTF-8 replaced
    (U+FFFD)."""
    if isinstance(name, bytes):
        return name.decode("utf-8", "replace")
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return name.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
    return name


def expand_dir(path: str) -> Path:
    """`~` and `~user` expanded; ValueError naming the path when there is no such home."""
    try:
        return Path(path).expanduser()
    except RuntimeError:
        raise ValueError(f"{path!r}: no such user, so no home directory to expand") from None


def expanded(path: str) -> Path:
    """A root from the command line or the environment: expanded where it can be, else taken
    as it is (it then does not exist, and `doctor` lists it as missing)."""
    try:
        return expand_dir(path)
    except ValueError:
        return Path(path)


def home_dir() -> Path:
    """ClawTrace's data directory: `$CLAWTRACE_HOME`, else `~/.clawtrace`."""
    env = os.environ.get("CLAWTRACE_HOME")
    if env:
        return expanded(env)
    return Path.home() / ".clawtrace"


def db_path() -> Path:
    return home_dir() / "clawtrace.db"


def config_path() -> Path:
    return home_dir() / "config.toml"
