"""Reading a transcript: from the offset a scan reached up to the size it had when discovered, in
chunks, each through a source's parser; and the hashes of the blocks read first and last, that
tell the next scan whether the bytes before its offset are still the ones read."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from typing import Any

from clawtrace.fileio import open_regular

HEAD_BYTES = 4096
TAIL_BYTES = 4096
UTF8_BOM = b"\xef\xbb\xbf"
CHUNK_BYTES = 4 * 1024 * 1024  # per read: bounds a worker's memory on huge transcripts


def block_hash(data: bytes | bytearray | memoryview) -> str:
    return f"{len(data)}:{hashlib.blake2b(data, digest_size=12).hexdigest()}"


# One read buffer per process, reused: a fresh `bytes` per read costs a page fault per 4 KB,
# which over a gigabyte of logs is seconds.
_buf = bytearray()


def read_file(task: dict[str, Any], parse: Callable[..., Any]) -> dict[str, Any]:
    """Read one file from its offset up to the size it had when discovered, in chunks, each
    through `parse(task, buf, n, state)` (the chunk is buf[:n]; returns a
    sources.base.ParseResult); returns the file's outcome. What was appended since discovery
    waits for the next scan."""
    global _buf
    offset = task["offset"]
    state = task["state"]
    out: dict[str, Any] = {
        "file_id": task["file_id"],
        "lines": 0,
        "malformed": 0,
        "turn_lines": 0,
        "rows": 0,
        "error": None,
        "head": None,
        "tail": task.get("tail"),
    }
    end = task["size"]
    chunk = CHUNK_BYTES
    try:
        # (os-level reads: a file object costs more than reading a typical transcript.)
        fd = open_regular(task["path"])
        try:
            # Whether the last line read had no newline (a whole JSON object at the end:
            # sources.base.lines_end). When it comes, the newline ends that line: it is no
            # empty line of its own (a scan from scratch counts one line there).
            after_tail = False
            if offset:
                first = os.read(fd, HEAD_BYTES)
                out["head"] = block_hash(first)
                bom_only = offset == len(UTF8_BOM) and first.startswith(UTF8_BOM)
                after_tail = not bom_only and os.pread(fd, 1, offset - 1) != b"\n"
            start = -1  # where the buffer's bytes begin in the file
            while offset < end:
                want = min(chunk, end - offset)
                if len(_buf) < want:
                    _buf = bytearray(max(want, 2 * len(_buf)))
                os.lseek(fd, offset, os.SEEK_SET)
                n = _read_into(fd, memoryview(_buf)[:want])
                start = offset
                if out["head"] is None:
                    out["head"] = block_hash(_buf[: min(n, HEAD_BYTES)])
                    if _buf[:3] == UTF8_BOM:
                        # A byte order mark before the first line is not part of it.
                        offset += 3
                        continue
                if not n:
                    break  # shorter than it was: the next scan sees it reset
                if after_tail:
                    after_tail = False
                    if _buf[0] == 0x0A:  # (b"\n")
                        offset += 1
                        continue
                res = parse(task, _buf, n, state)
                if res.consumed == 0:
                    if offset + n >= end:
                        break  # only a half-written last line: wait for the rest
                    chunk *= 2  # a line longer than the chunk
                    continue
                offset += res.consumed
                after_tail = _buf[res.consumed - 1] != 0x0A
                state = res.state
                out["lines"] += res.lines
                out["malformed"] += res.malformed
                out["turn_lines"] += res.turn_lines
                out["rows"] += res.records
            if offset and start >= 0:
                # The last block read, for the next scan to know that it is still there.
                lo = max(offset - TAIL_BYTES, 0)
                if lo >= start:
                    out["tail"] = block_hash(_buf[lo - start : offset - start])
                else:
                    out["tail"] = block_hash(os.pread(fd, offset - lo, lo))
        finally:
            os.close(fd)
    except OSError as exc:
        out["error"] = f"{exc.__class__.__name__}: {exc.strerror or exc}"
    out["offset"] = offset
    out["state"] = state
    return out


def _read_into_by_copy(fd: int, view: memoryview) -> int:
    data = os.read(fd, len(view))
    view[: len(data)] = data
    return len(data)


def _read_into_directly(fd: int, view: memoryview) -> int:
    return os.readv(fd, [view])


_read_into = _read_into_directly if hasattr(os, "readv") else _read_into_by_copy  # (Windows)
