"""`clawtrace serve` end to end: a real uvicorn server thread over a real log directory; a line
appended to a transcript shows up in the API without a restart."""

from __future__ import annotations

import json
import threading
import time
from datetime import UTC, datetime

import httpx
import pytest
from clawtrace import store
from clawtrace.alerts.settings import AlertSettings
from clawtrace.config import Config
from clawtrace.server.runner import ServerThread, live_stack_build

SESSION = "5f1e2d3c-0000-4000-8000-00000000abcd"


def assistant_line(n: int, tool: str = "Bash") -> str:
    return (
        json.dumps(
            {
                "parentUuid": None,
                "isSidechain": False,
                "userType": "external",
                "cwd": "/home/ada/src/webshop",
                "sessionId": SESSION,
                "version": "2.1.37",
                "gitBranch": "main",
                "type": "assistant",
                "uuid": f"00000000-0000-4000-8000-{n:012d}",
                "timestamp": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z"),
                "requestId": f"req_{n:024d}",
                "message": {
                    "model": "claude-sonnet-4-5",
                    "id": f"msg_{n:024d}",
                    "type": "message",
                    "role": "assistant",
                    "content": [
                        {"type": "tool_use", "id": f"toolu_{n}", "name": tool, "input": {}}
                    ],
                    "stop_reason": "tool_use",
                    "stop_sequence": None,
                    "usage": {
                        "input_tokens": 10,
                        "cache_creation_input_tokens": 100,
                        "cache_read_input_tokens": 5000,
                        "output_tokens": 50,
                        "cache_creation": {
                            "ephemeral_5m_input_tokens": 100,
                            "ephemeral_1h_input_tokens": 0,
                        },
                    },
                },
            }
        )
        + "\n"
    )


@pytest.fixture
def live(tmp_path):
    claude = tmp_path / "claude" / "projects" / "-home-ada-src-webshop"
    claude.mkdir(parents=True)
    transcript = claude / f"{SESSION}.jsonl"
    transcript.write_text(assistant_line(1))
    db = tmp_path / "home" / "clawtrace.db"
    store.connect(db).close()
    stack = live_stack_build(
        db,
        Config(),
        AlertSettings(desktop=False),
        claude_dirs=[str(tmp_path / "claude")],
        openclaw_dirs=[str(tmp_path / "openclaw")],
        token="t0ken",
        # Should a CI box not deliver file events, the rescan timer still gets there in time.
        fallback_seconds=5.0,
    )
    with ServerThread(stack) as server:
        yield server, transcript


def health(server) -> dict:
    return httpx.get(server.url + "/api/health", timeout=10).json()


def turns_reach(server, expected: int, timeout: float = 30.0) -> bool:
    """Wait, scan by scan (on the watcher's condition, no sleeping), until the API shows
    `expected` turns; False if `timeout` seconds of scans go by without it."""
    deadline = time.monotonic() + timeout
    while health(server)["turns"] != expected:
        remaining = deadline - time.monotonic()
        scanner = server.stack.scanner
        if remaining <= 0 or not scanner.wait_for_scans(scanner.scans + 1, timeout=remaining):
            return False
    return True


def test_a_turn_appended_to_a_transcript_reaches_the_api_without_a_restart(live):
    server, transcript = live
    assert health(server)["turns"] == 1
    assert health(server)["watching"] is True
    with transcript.open("a") as fh:
        fh.write(assistant_line(2))
    # File event -> debounce -> incremental scan; waited for generously, never timed.
    assert turns_reach(server, 2)
    summary = httpx.get(server.url + "/api/summary", timeout=10).json()
    assert summary["today"]["turns"] == 2


def test_a_half_written_line_is_picked_up_once_completed(live):
    server, transcript = live
    line = assistant_line(3)
    scans = server.stack.scanner.scans
    with transcript.open("a") as fh:
        fh.write(line[:40])
    assert server.stack.scanner.wait_for_scans(scans + 1, timeout=30)
    assert health(server)["turns"] == 1
    with transcript.open("a") as fh:
        fh.write(line[40:])
    assert turns_reach(server, 2)


def test_the_rescan_endpoint_wakes_the_watcher_with_the_token(live):
    server, _ = live
    scans = server.stack.scanner.scans
    refused = httpx.post(server.url + "/api/rescan", timeout=10)
    assert refused.status_code == 401
    accepted = httpx.post(
        server.url + "/api/rescan", headers={"Authorization": "Bearer t0ken"}, timeout=10
    )
    assert accepted.status_code == 202
    assert server.stack.scanner.wait_for_scans(scans + 1, timeout=30)


def test_the_periodic_rescan_catches_up_when_no_file_event_arrives(tmp_path):
    claude = tmp_path / "claude" / "projects" / "-p"
    claude.mkdir(parents=True)
    transcript = claude / f"{SESSION}.jsonl"
    transcript.write_text(assistant_line(1))
    db = tmp_path / "clawtrace.db"
    stack = live_stack_build(
        db,
        Config(),
        AlertSettings(desktop=False),
        claude_dirs=[str(tmp_path / "claude")],
        openclaw_dirs=[str(tmp_path / "oc")],
        fallback_seconds=0.2,
    )
    stack.scanner.use_events = False  # as on a mount that delivers no inotify events
    stack.scanner.start()
    try:
        scans = stack.scanner.scans
        with transcript.open("a") as fh:
            fh.write(assistant_line(2))
        assert stack.scanner.wait_for_scans(scans + 2, timeout=30)
        conn = store.connect(db)
        assert conn.execute("SELECT COUNT(*) FROM turns").fetchone()[0] == 2
        conn.close()
    finally:
        stack.stop()


def test_the_served_page_and_its_vendored_chart_library_load_offline(live):
    server, _ = live
    page = httpx.get(server.url + "/", timeout=10)
    assert page.status_code == 200 and '<canvas id="cost-chart"' in page.text
    assert "https://" not in page.text.split("<footer")[0]  # no CDN
    lib = httpx.get(server.url + "/static/vendor/chart.umd.min.js", timeout=10)
    assert lib.status_code == 200 and "Chart.js v4" in lib.text[:200]


def test_concurrent_readers_do_not_block_while_the_watcher_writes(live):
    server, transcript = live
    errors = []

    def reader():
        for _ in range(20):
            r = httpx.get(server.url + "/api/costs?range=7d", timeout=10)
            if r.status_code != 200:
                errors.append(r.status_code)

    threads = [threading.Thread(target=reader) for _ in range(3)]
    for t in threads:
        t.start()
    for n in range(10, 20):
        with transcript.open("a") as fh:
            fh.write(assistant_line(n))
    for t in threads:
        t.join()
    assert turns_reach(server, 11)
    assert errors == []


def test_the_first_import_can_run_in_the_background_while_the_server_answers(tmp_path):
    claude = tmp_path / "claude" / "projects" / "-p"
    claude.mkdir(parents=True)
    (claude / f"{SESSION}.jsonl").write_text(assistant_line(1) + assistant_line(2))
    db = tmp_path / "clawtrace.db"
    stack = live_stack_build(
        db,
        Config(),
        AlertSettings(desktop=False),
        claude_dirs=[str(tmp_path / "claude")],
        openclaw_dirs=[str(tmp_path / "oc")],
    )
    stack.scanner.start(initial_scan=True, background=True)
    try:
        assert stack.scanner.wait_for_scans(1, timeout=30)
        assert stack.state.status()["scanning"] is False
        conn = store.connect(db)
        assert conn.execute("SELECT COUNT(*) FROM turns").fetchone()[0] == 2
        conn.close()
    finally:
        stack.stop()
