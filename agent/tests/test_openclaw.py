"""OpenClaw parsing rules (formats.md section 2), through a real scan into the store."""

from __future__ import annotations

import json
import shutil

import pytest
from clawtrace import reports

from .conftest import oc_assistant, oc_header, run_scan, turn_rows, write_lines


def _sessions(tmp_path, agent="main"):
    return tmp_path / "oc" / "agents" / agent / "sessions"


def test_mirrors_and_zero_usage_errors_are_not_billed_but_billed_errors_are(conn, tmp_path):
    write_lines(
        _sessions(tmp_path) / "s-1.jsonl",
        [
            oc_header("s-1"),
            oc_assistant("e1", inp=100),
            oc_assistant("e2", provider="openclaw", model="delivery-mirror", inp=0, out=0),
            oc_assistant("e3", inp=0, out=0, stop="error"),
            oc_assistant("e4", inp=50, out=0, stop="error"),
        ],
    )
    run_scan(conn, openclaw=tmp_path / "oc")
    assert sorted(r["dedup_key"].rsplit(":", 1)[1] for r in turn_rows(conn)) == ["e1", "e4"]


def test_model_falls_back_to_the_latest_model_change_or_snapshot(conn, tmp_path):
    write_lines(
        _sessions(tmp_path) / "s-1.jsonl",
        [
            oc_header("s-1"),
            json.dumps(
                {"type": "model_change", "id": "m1", "provider": "zai", "modelId": "glm-4.7"}
            ),
            oc_assistant("e1", provider=None, model=None, inp=100),
            json.dumps(
                {
                    "type": "custom",
                    "id": "m2",
                    "customType": "model-snapshot",
                    "data": {"provider": "minimax", "modelId": "MiniMax-M2.1"},
                }
            ),
            oc_assistant("e2", provider=None, model=None, inp=100),
        ],
    )
    run_scan(conn, openclaw=tmp_path / "oc")
    got = {r["dedup_key"].rsplit(":", 1)[1]: (r["provider"], r["model"]) for r in turn_rows(conn)}
    assert got == {"e1": ("zai", "glm-4.7"), "e2": ("minimax", "MiniMax-M2.1")}


def test_total_tokens_only_is_booked_as_output(conn, tmp_path):
    write_lines(
        _sessions(tmp_path) / "s-1.jsonl",
        [oc_header("s-1"), oc_assistant("e1", usage={"totalTokens": 777})],
    )
    run_scan(conn, openclaw=tmp_path / "oc")
    row = turn_rows(conn)[0]
    assert (row["input_tokens"], row["output_tokens"]) == (0, 777)


def test_archived_copies_of_a_session_do_not_double_count(conn, tmp_path):
    live = write_lines(
        _sessions(tmp_path) / "s-1.jsonl",
        [oc_header("s-1"), oc_assistant("e1", inp=100), oc_assistant("e2", inp=5)],
    )
    run_scan(conn, openclaw=tmp_path / "oc")
    # /reset renames the live file; a backup copy also lies around and must be ignored.
    shutil.copy(live, live.with_name("s-1.jsonl.bak"))
    live.rename(live.with_name("s-1.jsonl.reset.2026-02-12T00-00-00.000Z"))
    result = run_scan(conn, openclaw=tmp_path / "oc")
    assert result.files_read == 1
    assert reports.totals(conn).turns == 2
    assert reports.totals(conn).input_tokens == 105


def test_archived_transcripts_never_seen_live_are_read(conn, tmp_path):
    write_lines(
        _sessions(tmp_path) / "old.jsonl.deleted.2026-01-01T00-00-00.000Z",
        [oc_header("old"), oc_assistant("e1", inp=42)],
    )
    run_scan(conn, openclaw=tmp_path / "oc")
    rows = turn_rows(conn)
    assert [(r["session_id"], r["input_tokens"]) for r in rows] == [("old", 42)]


@pytest.mark.parametrize("older_sessions", [0, 8000], ids=["small index", "index over 1 MB"])
def test_subagent_sessions_are_marked_from_the_index(conn, tmp_path, older_sessions):
    d = _sessions(tmp_path)
    write_lines(d / "child.jsonl", [oc_header("child"), oc_assistant("e1")])
    write_lines(d / "parent.jsonl", [oc_header("parent"), oc_assistant("e1")])
    index = {
        "agent:main:main": {"sessionId": "parent", "label": "CANARY-7f3a9c"},
        "agent:main:subagent:uuid-1": {
            "sessionId": "child",
            "spawnedBy": "agent:main:main",
            "spawnDepth": 1,
        },
        "agent:main:cron:x": {"sessionId": "never-written"},
    }
    # Sessions whose transcripts were cleaned up long ago (a gateway's index keeps them).
    for n in range(older_sessions):
        index[f"agent:main:telegram:direct:{n}"] = {
            "sessionId": f"gone-{n}",
            "sessionFile": f"gone-{n}.jsonl",
            "label": "A session whose transcript was cleaned up long ago",
        }
    (d / "sessions.json").write_text(json.dumps(index))
    run_scan(conn, openclaw=tmp_path / "oc")
    flags = {r["session_id"]: (r["is_sidechain"], r["subagent"]) for r in turn_rows(conn)}
    assert flags == {"child": (1, "agent:main:subagent:uuid-1"), "parent": (0, None)}
    missing = conn.execute(
        "SELECT session_key FROM index_sessions WHERE transcript_exists = 0"
    ).fetchall()
    assert len(missing) == 1 + older_sessions
    assert ("agent:main:cron:x",) in missing


def test_a_corrupt_sessions_index_does_not_stop_the_scan(conn, tmp_path):
    d = _sessions(tmp_path)
    write_lines(d / "s-1.jsonl", [oc_header("s-1"), oc_assistant("e1")])
    (d / "sessions.json").write_text('{"agent:main:main": {"sessionId": ')
    run_scan(conn, openclaw=tmp_path / "oc")
    assert len(turn_rows(conn)) == 1


def test_agent_is_the_directory_and_project_the_header_cwd(conn, tmp_path):
    write_lines(
        _sessions(tmp_path, "ops") / "s-1.jsonl",
        [oc_header("s-1", cwd="/srv/ops"), oc_assistant("e1")],
    )
    run_scan(conn, openclaw=tmp_path / "oc")
    row = turn_rows(conn)[0]
    assert (row["agent"], row["project"], row["source"]) == ("ops", "/srv/ops", "openclaw")


def test_tool_call_names_are_recorded_without_arguments(conn, tmp_path):
    write_lines(
        _sessions(tmp_path) / "s-1.jsonl",
        [oc_header("s-1"), oc_assistant("e1", tools=["exec", "browser"])],
    )
    run_scan(conn, openclaw=tmp_path / "oc")
    assert json.loads(turn_rows(conn)[0]["tools"]) == ["exec", "browser"]


def test_openclaw_state_dir_env_and_legacy_home(tmp_path, monkeypatch):
    from clawtrace.sources import SOURCES

    openclaw_roots = SOURCES["openclaw"].roots

    monkeypatch.setenv("OPENCLAW_STATE_DIR", str(tmp_path / "state"))
    assert openclaw_roots() == [tmp_path / "state"]
    monkeypatch.delenv("OPENCLAW_STATE_DIR")
    monkeypatch.setenv("OPENCLAW_HOME", str(tmp_path / "h"))
    (tmp_path / "h" / ".clawdbot").mkdir(parents=True)
    assert openclaw_roots() == [tmp_path / "h" / ".clawdbot"]
