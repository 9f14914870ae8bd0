"""Files rewritten under the scanner: what lies past the stored offset is read only while the
bytes before it are still the ones read (formats.md 1.1: transcripts are append-only, but
editors, sync tools and restores are not)."""

from __future__ import annotations

import os
import time

import pytest
from clawtrace import scan as scan_module

from tests.conftest import claude_assistant, run_scan, turn_rows, write_lines


def _transcript(tmp_path):
    return tmp_path / "claude" / "projects" / "-home-u-proj" / "s.jsonl"


def _line(msg_id: str, out: int = 20) -> bytes:
    return claude_assistant(msg_id=msg_id, out=out).encode() + b"\n"


def _settle(*paths) -> None:
    """Times a minute old: a listing of them is trusted (see sources.base.RACY_NS)."""
    settled = time.time_ns() - 60 * 10**9
    for path in paths:
        os.utime(path, ns=(settled, settled))


def test_a_tail_rewritten_longer_is_read_again_from_the_start(conn, tmp_path):
    f = _transcript(tmp_path)
    f.parent.mkdir(parents=True)
    head = b"".join(_line(f"h{i}", 10) for i in range(8))  # more than the head hash covers
    assert len(head) > scan_module.reading.HEAD_BYTES
    f.write_bytes(head + _line("m2") + _line("m3"))
    run_scan(conn, tmp_path / "claude")
    # Same head, new lines from a point before the old end, longer than before.
    f.write_bytes(head + _line("m2b", 21) + _line("m3b", 22) + _line("m4", 23))
    result = run_scan(conn, tmp_path / "claude")
    assert result.files_reset == 1 and result.malformed == 0
    # What was read stays (history never shrinks); the rewritten lines are read, once.
    assert sorted(r["output_tokens"] for r in turn_rows(conn)) == [10] * 8 + [20, 20, 21, 22, 23]
    assert run_scan(conn, tmp_path / "claude").files_read == 0


@pytest.mark.parametrize("warm", [False, True], ids=["listing", "warm-check"])
def test_a_rewrite_in_place_that_keeps_size_and_times_is_noticed(conn, tmp_path, warm):
    f = _transcript(tmp_path)
    f.parent.mkdir(parents=True)
    f.write_bytes(_line("m1") + _line("m2"))
    _settle(f, f.parent, f.parent.parent, f.parent.parent.parent)
    run_scan(conn, tmp_path / "claude")
    before = os.stat(f)
    with open(f, "r+b") as fh:  # same length, another message id
        fh.seek(len(_line("m1")))
        fh.write(_line("m9", 29))
    os.utime(f, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert os.stat(f).st_size == before.st_size
    if not warm:
        with conn:
            conn.execute("DELETE FROM watch")  # the next scan lists the tree
    result = run_scan(conn, tmp_path / "claude")
    assert result.files_reset == 1
    assert sorted(r["output_tokens"] for r in turn_rows(conn)) == [20, 20, 29]


def test_a_file_whose_status_only_changed_is_not_read_again(conn, tmp_path):
    f = write_lines(_transcript(tmp_path), [claude_assistant(msg_id="m1")])
    run_scan(conn, tmp_path / "claude")
    os.chmod(f, 0o600)  # the status-change time moves, the bytes do not
    result = run_scan(conn, tmp_path / "claude")
    assert result.files_reset == 0 and result.bytes_read == 0
    assert run_scan(conn, tmp_path / "claude").files_read == 0


def test_appends_after_a_tail_block_spanning_two_reads_resume_where_they_stopped(
    conn, tmp_path, monkeypatch
):
    """The last block read is hashed from the buffer or, when the last read was short, from the
    file: either way the next scan resumes at the offset."""
    monkeypatch.setattr(scan_module.reading, "CHUNK_BYTES", 700)
    f = _transcript(tmp_path)
    f.parent.mkdir(parents=True)
    f.write_bytes(b"".join(_line(f"m{i}") for i in range(12)))
    run_scan(conn, tmp_path / "claude")
    with open(f, "ab") as fh:
        fh.write(_line("m12"))
    result = run_scan(conn, tmp_path / "claude")
    assert result.files_reset == 0
    assert len(turn_rows(conn)) == 13


def test_a_byte_order_mark_before_the_first_line_does_not_lose_it(conn, tmp_path):
    f = _transcript(tmp_path)
    f.parent.mkdir(parents=True)
    f.write_bytes(b"\xef\xbb\xbf" + _line("m1") + _line("m2"))
    result = run_scan(conn, tmp_path / "claude")
    assert result.malformed == 0
    assert sorted(r["msg_id"] for r in turn_rows(conn)) == ["m1", "m2"]
    with open(f, "ab") as fh:
        fh.write(_line("m3"))
    assert run_scan(conn, tmp_path / "claude").files_reset == 0
    assert len(turn_rows(conn)) == 3


def test_a_byte_order_mark_on_an_openclaw_transcript_keeps_its_header(conn, tmp_path):
    from tests.conftest import oc_assistant, oc_header

    f = tmp_path / "oc" / "agents" / "main" / "sessions" / "s-1.jsonl"
    f.parent.mkdir(parents=True)
    lines = oc_header(cwd="/home/u/work/app") + "\n" + oc_assistant("e1") + "\n"
    f.write_bytes(b"\xef\xbb\xbf" + lines.encode())
    result = run_scan(conn, openclaw=tmp_path / "oc")
    assert result.malformed == 0
    (row,) = turn_rows(conn)
    assert row["project"] == "/home/u/work/app" and row["session_id"] == "s-1"
