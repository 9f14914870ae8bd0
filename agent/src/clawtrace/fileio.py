"""Reading files that someone else controls: only regular files, never waiting on one.

A FIFO, a socket or a device can sit where a transcript, an index or the config is expected
(named so by accident or on purpose). Opening a FIFO for reading waits for a writer for ever,
so every open here is non-blocking, and the type is checked on what was opened: a stat before
the open could be of another file than the one opened.
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

OPEN_FLAGS = (
    os.O_RDONLY
    | getattr(os, "O_CLOEXEC", 0)
    | getattr(os, "O_BINARY", 0)
    | getattr(os, "O_NONBLOCK", 0)
)


class NotRegularFile(OSError):
    """The path is a FIFO, socket, device or directory, not a file to read."""


def open_regular(path: str | os.PathLike[str]) -> int:
    """A descriptor of the regular file at `path` (symbolic links followed); NotRegularFile
    for anything else, without waiting on it."""
    fd = os.open(path, OPEN_FLAGS)
    try:
        mode = os.fstat(fd).st_mode
    except BaseException:
        os.close(fd)
        raise
    if not stat.S_ISREG(mode):
        os.close(fd)
        raise NotRegularFile(errno.EINVAL, "not a regular file", os.fspath(path))
    return fd


def read_regular(path: str | os.PathLike[str], *, max_bytes: int | None = None) -> bytes:
    """The bytes of the regular file at `path`; OSError when it is not one, or is larger than
    `max_bytes` (a limit for files read whole, such as the config)."""
    fd = open_regular(path)
    try:
        size = os.fstat(fd).st_size
        if max_bytes is not None and size > max_bytes:
            raise OSError(errno.EFBIG, f"larger than {max_bytes:,} bytes", os.fspath(path))
        chunks = []
        while True:
            chunk = os.read(fd, max(size, 1 << 16))
            if not chunk:
                break
            chunks.append(chunk)
            if max_bytes is not None and sum(map(len, chunks)) > max_bytes:
                raise OSError(errno.EFBIG, f"larger than {max_bytes:,} bytes", os.fspath(path))
        return b"".join(chunks)
    finally:
        os.close(fd)


def read_regular_text(path: Path, *, max_bytes: int | None = None) -> str:
    """`read_regular` decoded as UTF-8 (a byte order mark before the text is dropped)."""
    data = read_regular(path, max_bytes=max_bytes)
    return data.decode("utf-8-sig")
