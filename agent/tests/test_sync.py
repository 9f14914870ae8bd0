"""The sender (`clawtrace login`, `sync`, `logout`) against a stand-in of the ingest API over
real HTTP: metadata only, every turn exactly once, nothing lost to an error or a change made
after a turn was sent."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from clawtrace import store
from clawtrace.sync import outbox
from clawtrace.sync.client import Client, SyncError, server_url

from tests.conftest import claude_assistant, claude_user, write_lines
from tests.sync_fake import fake_server_start

CANARY = "CANARY-7f3a9c"


@pytest.fixture
def fake():
    server, httpd = fake_server_start()
    yield server
    httpd.shutdown()


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    root = tmp_path / "claude"
    lines = []
    for i in range(2500):
        lines.append(claude_user(f"please {CANARY} {i}"))
        lines.append(claude_assistant(msg_id=f"m{i}", req_id=f"r{i}", out=20 + i % 7))
    write_lines(root / "projects" / "-home-u-secret-proj" / "sess-1.jsonl", lines)
    return root


def run(*args: str, tree: Path | None = None, env: dict[str, str] | None = None):
    full = dict(os.environ, CLAWTRACE_NO_BROWSER="1", **(env or {}))
    if tree is not None:
        full["CLAUDE_CONFIG_DIR"] = str(tree)
        full["OPENCLAW_STATE_DIR"] = str(tree / "no-openclaw")
    done = subprocess.run(
        [sys.executable, "-m", "clawtrace", *args], capture_output=True, env=full, timeout=120
    )
    out, err = done.stdout.decode(), done.stderr.decode()
    assert "Traceback" not in out + err, out + err
    return done.returncode, out, err


def login(fake, tree) -> None:
    code, out, err = run("login", "--server", fake.url, "--enroll-key", "cte_good", tree=tree)
    assert code == 0, out + err


def test_an_enrollment_key_links_the_machine_in_a_file_only_its_user_reads(
    fake, tree, isolated_home
):
    login(fake, tree)
    device_file = isolated_home / "device.json"
    assert stat.S_IMODE(device_file.stat().st_mode) == 0o600
    assert json.loads(device_file.read_text())["secret"] == fake.secret
    code, _, err = run("login", "--server", fake.url, "--enroll-key", "cte_good", tree=tree)
    assert code == 2 and "already linked" in err
    device_file.chmod(0o644)
    code, _, err = run("sync", tree=tree)
    assert code == 2 and "chmod 600" in err


def test_a_bad_enrollment_key_is_refused_with_the_servers_reason(fake, tree, isolated_home):
    code, _, err = run("login", "--server", fake.url, "--enroll-key", "cte_bad", tree=tree)
    assert code == 1 and "invalid_enroll_key" in err
    assert not (isolated_home / "device.json").exists()


PLAN_REFUSAL = (
    "Acme is on the Free plan, which allows 1 linked device. The Team plan allows 3 linked "
    "devices: upgrade at https://clawtrace.example/o/acme/billing/. Revoking a device on the "
    "Devices page frees its place."
)


def test_an_enrollment_past_the_plans_devices_prints_the_servers_reason_and_fails(
    fake, tree, isolated_home
):
    fake.link_refusal = PLAN_REFUSAL
    code, out, err = run("login", "--server", fake.url, "--enroll-key", "cte_good", tree=tree)
    assert code == 1
    assert err == f"Error: the server refused to link this machine.\n{PLAN_REFUSAL}\n"
    assert "Linked as" not in out
    assert not (isolated_home / "device.json").exists()


def test_a_device_flow_refused_at_the_poll_prints_the_servers_reason_and_fails(
    fake, tree, isolated_home
):
    fake.link_refusal = PLAN_REFUSAL
    fake.interval, fake.slow_down_first, fake.approve_after = 0, False, 1
    code, out, err = run("login", "--server", fake.url, tree=tree)
    assert code == 1
    assert "Waiting for approval..." in out
    assert err == f"Error: the server refused to link this machine.\n{PLAN_REFUSAL}\n"
    assert fake.polls == 1  # a refusal ends the polling
    assert not (isolated_home / "device.json").exists()


def test_the_refusal_reaches_the_caller_of_the_device_flow_with_its_code(fake, isolated_home):
    from clawtrace.sync.sender import link_interactively

    fake.link_refusal = PLAN_REFUSAL
    with pytest.raises(SyncError) as refused:
        link_interactively(fake.url, "laptop", show=lambda grant: None, sleep=lambda s: None)
    assert (refused.value.status, refused.value.code) == (403, "device_limit_reached")
    assert refused.value.detail == PLAN_REFUSAL


def test_sync_sends_every_turn_once_and_metadata_only(fake, tree, isolated_home):
    login(fake, tree)
    code, out, err = run("sync", tree=tree)
    assert code == 0, out + err
    assert len(fake.events) == 2500 and "2,500 new" in out
    assert all(CANARY.encode() not in body for body in fake.bodies)
    assert all(b"/home/u" not in body for body in fake.bodies)  # (the folder's name only)
    assert {e["project"] for e in fake.events.values()} == {"secret-proj"} or {
        e["project"] for e in fake.events.values()
    } == {"proj"}
    egress = (isolated_home / "egress.log").read_text().splitlines()
    assert len(egress) == 3  # 1,000 + 1,000 + 500
    assert CANARY not in "".join(egress)
    again = run("sync", tree=tree)
    assert again[0] == 0 and "Sent 0 events" in again[1]
    code, out, _ = run("sync", "--check", tree=tree)
    assert code == 0 and "In agreement" in out


def test_the_dry_run_prints_exactly_what_the_sync_then_sends(fake, tree, isolated_home):
    login(fake, tree)
    code, printed, _ = run("sync", "--dry-run", tree=tree)
    assert code == 0 and not fake.ingested
    assert run("sync", tree=tree)[0] == 0
    # Byte for byte, in order; the server may see two of them the other way round (two
    # batches are in flight at once), the egress log has them in the order they were sent.
    assert sorted(printed.encode().splitlines()) == sorted(fake.ingested)
    sent_in_order = [json.loads(line)["body"] for line in (isolated_home / "egress.log").open()]
    assert [json.loads(line) for line in printed.splitlines()] == sent_in_order
    one = json.loads(printed.splitlines()[0])["events"][0]
    assert set(one) == {
        "event_id", "source", "agent", "project", "session_id", "model", "provider",
        "timestamp", "input_tokens", "output_tokens", "cache_read_tokens",
        "cache_write_5m_tokens", "cache_write_1h_tokens", "web_search_requests", "cost_usd",
        "logged_cost_usd", "price_source", "is_sidechain", "tools", "git_branch",
    }  # fmt: skip
    code, log, _ = run("sync", "--log")
    assert code == 0 and len(log.splitlines()) == 3


def test_a_turn_that_grows_after_it_was_sent_is_sent_again(fake, tree, isolated_home):
    login(fake, tree)
    assert run("sync", tree=tree)[0] == 0
    # The fuller copy of a streamed reply (same message and request id) arrives later.
    session = tree / "projects" / "-home-u-secret-proj" / "sess-1.jsonl"
    with open(session, "a") as fh:
        fh.write(claude_assistant(msg_id="m7", req_id="r7", out=5000) + "\n")
    code, out, err = run("sync", tree=tree)
    assert code == 0, out + err
    grown = [e for e in fake.events.values() if e["output_tokens"] == 5000]
    assert len(grown) == 1 and len(fake.events) == 2500
    assert run("sync", "--check", tree=tree)[0] == 0


def test_server_errors_are_retried_and_a_refusal_keeps_the_batch(fake, tree, isolated_home):
    login(fake, tree)
    fake.fail_next = [503, 500]
    code, out, err = run("sync", tree=tree)
    assert code == 0, out + err
    assert len(fake.events) == 2500
    with open(tree / "projects" / "-home-u-secret-proj" / "sess-1.jsonl", "a") as fh:
        fh.write(claude_assistant(msg_id="new", req_id="new") + "\n")
    fake.fail_next = [400]
    code, _, err = run("sync", tree=tree)
    assert code == 1 and "400" in err and "1 turns wait" in err
    assert run("sync", tree=tree)[0] == 0 and len(fake.events) == 2501


def test_resync_sends_everything_and_the_server_counts_it_once(fake, tree, isolated_home):
    login(fake, tree)
    run("sync", tree=tree)
    code, out, _ = run("sync", "--resync", tree=tree)
    assert code == 0 and "2,500 already there" in out and len(fake.events) == 2500


def test_a_replay_found_after_its_row_was_sent_is_retracted(fake, isolated_home, tmp_path):
    conn = store.connect(isolated_home / "clawtrace.db")
    outbox.outbox_enable(conn)
    conn.execute("UPDATE meta SET value = '100' WHERE key = 'sync_high'")
    conn.commit()
    store.turns_write_named(
        conn,
        [
            {
                "key_hash": 77, "msg_hash": 78, "dedup_key": "k", "msg_id": "m",
                "source": "claude-code", "agent": "claude", "project": "/p", "session_id": "s",
                "model": "claude-haiku-4-5",
                "provider": "anthropic", "ts": 1_770_000_000_000, "output_tokens": 5,
            }
        ],
    )  # fmt: skip
    conn.execute("DELETE FROM turns WHERE key_hash = 77")
    conn.commit()
    batch = outbox.next_batch(conn, outbox.Privacy())
    assert batch.retract == [f"{78:016x}{77:016x}"]
    outbox.acknowledge(conn, batch)
    assert outbox.pending(conn)["retract"] == 0


def test_logout_revokes_the_device_and_forgets_it(fake, tree, isolated_home):
    login(fake, tree)
    code, _, _ = run("logout")
    assert code == 0 and fake.revoked and not (isolated_home / "device.json").exists()
    code, _, err = run("sync", tree=tree)
    assert code == 2 and "not linked" in err


def test_the_device_flow_polls_at_the_interval_and_slows_down(fake, isolated_home, monkeypatch):
    from clawtrace.sync.sender import link_interactively

    waits, shown = [], []
    device = link_interactively(
        fake.url, "laptop", show=shown.append, sleep=waits.append, clock=lambda: 0.0
    )
    assert shown[0]["user_code"] == "WDJBMJHT" and device.organization == "acme"
    assert waits == [5.0, 10.0]  # (slow_down adds five seconds)


def test_plain_http_only_to_this_machine():
    assert server_url("http://127.0.0.1:8000/") == "http://127.0.0.1:8000"
    assert server_url("http://[::1]:8000") == "http://[::1]:8000"
    assert server_url("https://clawtrace.example") == "https://clawtrace.example"
    for url in ("http://clawtrace.example", "http://10.0.0.5:8000", "ftp://x", "nonsense"):
        with pytest.raises(SyncError):
            server_url(url)


def test_a_connection_that_never_answers_is_retried_then_reported():
    slept: list[float] = []
    client = Client("http://127.0.0.1:9", "ctd_x", attempts=3, sleep=slept.append)
    with pytest.raises(SyncError, match="cannot reach"):
        client.stats()
    assert len(slept) == 2


def _serve_stack(home: Path, tree: Path):
    """What `clawtrace serve` runs, reading `tree`, rescanning only when asked."""
    from clawtrace.alerts.settings import AlertSettings
    from clawtrace.config import Config
    from clawtrace.server.runner import live_stack_build

    return live_stack_build(
        home / "clawtrace.db",
        Config(),
        AlertSettings(desktop=False),
        claude_dirs=[str(tree)],
        openclaw_dirs=[str(tree / "no-openclaw")],
        fallback_seconds=600,
    )


def test_serve_syncs_on_its_own_when_linked_and_says_so(fake, tree, isolated_home):
    import httpx
    from clawtrace.server.runner import ServerThread

    login(fake, tree)
    stack = _serve_stack(isolated_home, tree)
    stack.syncer.min_gap_seconds = 0.05
    with ServerThread(stack) as server:
        assert stack.syncer.wait_for_rounds(1, timeout=60)
        assert len(fake.events) == 2500
        sync = httpx.get(server.url + "/api/health").json()["sync"]
        assert sync["linked"] and sync["server"] == fake.url and sync["pending"] == 0
        assert sync["last_sync_at"] and sync["last_error"] is None
        # A new turn: the scan it triggers is followed by a round that sends it.
        session = tree / "projects" / "-home-u-secret-proj" / "sess-1.jsonl"
        with open(session, "a") as fh:
            fh.write(claude_assistant(msg_id="m-new", req_id="r-new", out=9) + "\n")
        stack.scanner.request()
        assert _eventually(lambda: len(fake.events) == 2501, stack)
        # The server refuses: the error is told, not raised, and nothing is lost. It keeps
        # refusing while we look (a later round may run at any moment), then recovers.
        fake.fail_next.extend([400] * 10_000)
        with open(session, "a") as fh:
            fh.write(claude_assistant(msg_id="m-late", req_id="r-late", out=9) + "\n")
        stack.scanner.request()
        assert _eventually(lambda: "400" in (stack.syncer.status().get("last_error") or ""), stack)
        sync = httpx.get(server.url + "/api/health").json()["sync"]
        assert sync["pending"] == 1 and len(fake.events) == 2501
        fake.fail_next.clear()
        assert _eventually(lambda: len(fake.events) == 2502, stack)


def _eventually(condition, stack, rounds: int = 20) -> bool:
    """True once `condition` holds after one of the next sync rounds (a round may start
    before the scan that a test waits for has committed)."""
    for _ in range(rounds):
        if condition():
            return True
        stack.syncer.wait_for_rounds(stack.syncer.rounds + 1, timeout=30)
    return condition()


def test_serve_does_not_sync_an_unlinked_machine(fake, tree, isolated_home):
    from clawtrace.server.runner import ServerThread

    stack = _serve_stack(isolated_home, tree)
    with ServerThread(stack):
        assert stack.syncer.wait_for_rounds(1, timeout=60)
        assert stack.syncer.status() == {"linked": False, "enabled": True}
    assert fake.bodies == []


def test_event_times_are_iso_utc_to_the_millisecond(conn):
    from datetime import UTC, datetime

    moments = [946_684_800_000, 1_770_000_000_001, 1_770_000_000_999, 4_102_444_799_999]
    store.turns_write_named(
        conn,
        [
            {
                "key_hash": 1000 + i, "msg_hash": 2000 + i, "dedup_key": f"k{i}",
                "msg_id": f"m{i}", "source": "claude-code", "agent": "claude",
                "project": "/home/u/src/shop/", "session_id": "s", "model": "claude-haiku-4-5",
                "provider": "anthropic", "ts": ms, "output_tokens": 5,
            }
            for i, ms in enumerate(moments)
        ],
    )  # fmt: skip
    conn.commit()
    outbox.outbox_enable(conn)
    batch = outbox.next_batch(conn, outbox.Privacy(), peek=True)
    expected = [
        datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="milliseconds")[:-6] + "Z"
        for ms in moments
    ]
    assert [e["timestamp"] for e in batch.events] == expected
    assert {e["project"] for e in batch.events} == {"shop"}


@pytest.mark.parametrize(
    ("path", "label"),
    [
        ("/home/u/src/shop", "shop"),
        ("/home/u/src/shop/", "shop"),
        ("C:\\Users\\u\\shop", "shop"),
        ("/home/u/src/shop/.", "shop"),
        ("/", None),
        ("", None),
    ],
)
def test_a_project_label_is_the_last_component_of_its_path(path, label):
    assert outbox.Privacy().project(path) == label
    assert outbox.Privacy(project_names="omit").project(path) is None
    hashed = outbox.Privacy(project_names="hash", salt="acme").project(path)
    assert hashed is None if not path else hashed.startswith("h:") and "shop" not in hashed


@pytest.mark.parametrize("pico", [0, 1, 999_999_999_999, 10**12, 123_456_789_012_345, -5, None])
def test_costs_leave_as_exact_decimals(conn, pico):
    store.turns_write_named(
        conn,
        [
            {
                "key_hash": 5, "msg_hash": 6, "dedup_key": "k", "msg_id": "m",
                "source": "claude-code", "agent": "claude", "project": "p", "session_id": "s",
                "model": "claude-haiku-4-5", "provider": "anthropic", "ts": 1_770_000_000_000,
                "output_tokens": 5,
            }
        ],
    )  # fmt: skip
    conn.execute("UPDATE turns SET cost_pico = ?, reported_pico = ?", (pico, pico))
    conn.commit()
    outbox.outbox_enable(conn)
    event = outbox.next_batch(conn, outbox.Privacy(), peek=True).events[0]
    assert event["cost_usd"] == outbox.usd(pico) == event["logged_cost_usd"]


def test_the_summary_counts_in_words_a_person_would_use():
    from clawtrace.cli_scan import counted

    assert [counted(1, "batch"), counted(2, "batch"), counted(1, "event"), counted(0, "event")] == [
        "1 batch", "2 batches", "1 event", "0 events",
    ]  # fmt: skip
