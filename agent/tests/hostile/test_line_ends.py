"""A last line read without its newline (a whole JSON object: sources.base.lines_end) is one
line when its newline comes later, in the next scan or the next read chunk: the newline ends
it, it is no empty line of its own. (Found by the kill loop: a file grown from `...}` to
`...}\\n` counted one line more than a scan of it from scratch.)"""

from __future__ import annotations

import pytest
from clawtrace import scan as scan_module
from clawtrace.sources import base

from tests.conftest import claude_assistant, oc_assistant, oc_header, run_scan

UTF8_BOM = b"\xef\xbb\xbf"


@pytest.fixture(params=["native", "python"])
def mode(request, monkeypatch):
    if request.param == "python":
        monkeypatch.setattr(base, "NATIVE", None)
    return request.param


def _counts(conn):
    return conn.execute("SELECT lines, malformed, turn_lines, offset, size FROM files").fetchone()


def test_the_newline_of_a_line_read_without_it_is_not_a_line(conn, tmp_path, mode):
    f = tmp_path / "claude" / "projects" / "-p" / "s.jsonl"
    f.parent.mkdir(parents=True)
    first, second = claude_assistant(msg_id="m1"), claude_assistant(msg_id="m2")
    f.write_bytes(first.encode() + b"\n" + second.encode())
    run_scan(conn, tmp_path / "claude")
    assert _counts(conn)[:3] == (2, 0, 2)
    with open(f, "ab") as fh:
        fh.write(b"\n")
    run_scan(conn, tmp_path / "claude")
    assert _counts(conn)[:3] == (2, 0, 2)
    with open(f, "ab") as fh:
        fh.write(b"\n" + claude_assistant(msg_id="m3").encode() + b"\n")
    run_scan(conn, tmp_path / "claude")
    # (an empty line of its own is still a line, as in a scan from scratch)
    assert _counts(conn)[:3] == (4, 0, 3)


def test_a_read_chunk_that_ends_just_before_a_newline_counts_each_line_once(
    conn, tmp_path, monkeypatch, mode
):
    lines = [oc_header("s")] + [oc_assistant(f"e{i}", out=i + 1) for i in range(40)]
    data = ("\n".join(lines) + "\n").encode()
    # A chunk whose end falls right before the newline of line 7: that line is whole JSON.
    cut = sum(len(line) + 1 for line in lines[:7]) - 1
    monkeypatch.setattr(scan_module.reading, "CHUNK_BYTES", cut)
    f = tmp_path / "oc" / "agents" / "main" / "sessions" / "s.jsonl"
    f.parent.mkdir(parents=True)
    f.write_bytes(data)
    run_scan(conn, openclaw=tmp_path / "oc")
    assert _counts(conn) == (41, 0, 40, len(data), len(data))


def test_a_file_that_is_only_a_byte_order_mark_then_grows_counts_its_lines(conn, tmp_path, mode):
    f = tmp_path / "claude" / "projects" / "-p" / "s.jsonl"
    f.parent.mkdir(parents=True)
    f.write_bytes(UTF8_BOM)
    run_scan(conn, tmp_path / "claude")
    with open(f, "ab") as fh:
        fh.write(b"\n" + claude_assistant(msg_id="m1").encode() + b"\n")
    run_scan(conn, tmp_path / "claude")
    assert _counts(conn)[:3] == (2, 0, 1)  # as from scratch: an empty line, then the turn
