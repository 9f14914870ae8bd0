"""Failures that come from the machine, not from a bug, told in one line: what is wrong and
what to do. Every command (and `serve`'s status) says these instead of a traceback; anything
else is a bug and keeps its traceback."""

from __future__ import annotations

import errno
import sqlite3

from clawtrace.paths import home_dir, label

_FULL = ("database or disk is full", "no space left on device")
_DAMAGED = (
    "file is not a database",
    "database disk image is malformed",
    "no such table",
    "no such column",
    "malformed database schema",
    "unsupported file format",
)
_READ_ONLY = ("attempt to write a readonly database", "readonly database")


class StoreDamaged(Exception):
    """The store's file is not a sound ClawTrace store (see `explain`)."""


def _texts(exc: BaseException) -> str:
    parts = [str(exc), *getattr(exc, "__notes__", ())]
    return " ".join(parts).lower()


def disk_full(exc: BaseException) -> bool:
    if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, getattr(errno, "EDQUOT", -1)):
        return True
    return isinstance(exc, sqlite3.Error | RuntimeError) and any(t in _texts(exc) for t in _FULL)


def store_damaged(exc: BaseException) -> bool:
    if isinstance(exc, StoreDamaged):
        return True
    return isinstance(exc, sqlite3.DatabaseError | RuntimeError) and any(
        t in _texts(exc) for t in _DAMAGED
    )


def explain(exc: BaseException) -> str | None:
    """The one-line message for `exc`, or None when it is not one of these (a bug)."""
    home = label(str(home_dir()))
    if disk_full(exc):
        return (
            f"the disk holding {home} is full. What was read before stays stored; free some "
            "space and run `clawtrace scan` again to read the rest."
        )
    if store_damaged(exc):
        return (
            f"the store in {home} is damaged ({exc}). Run `clawtrace doctor`: it says what is "
            "wrong and how to recover (keep a copy of the store first)."
        )
    if isinstance(exc, sqlite3.Error) and any(t in _texts(exc) for t in _READ_ONLY):
        return f"cannot write the store in {home}: it is read-only for this user ({exc})."
    if isinstance(exc, sqlite3.OperationalError) and "unable to open database" in _texts(exc):
        return f"cannot open the store in {home} ({exc}): is it a directory this user can write?"
    if isinstance(exc, OSError) and exc.errno is not None:
        where = label(exc.filename) if isinstance(exc.filename, str | bytes) else home
        reason = exc.strerror or str(exc)
        if exc.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
            return f"cannot write {where}: {reason}. ClawTrace keeps its files in {home}."
        if exc.errno in (errno.ENOTDIR, errno.EEXIST, errno.EISDIR):
            return (
                f"cannot use {where}: {reason}. CLAWTRACE_HOME ({home}) must be a directory "
                "(or a path where one can be made), and hold no directory named like ClawTrace's "
                "files."
            )
        if exc.errno == errno.ENAMETOOLONG:
            return f"a path is longer than this system allows: {where}."
    return None
