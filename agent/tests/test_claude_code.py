"""Claude Code parsing rules (formats.md section 1), through a real scan into the store."""

from __future__ import annotations

import json

from clawtrace import reports

from .conftest import claude_assistant, claude_user, run_scan, turn_rows, write_lines


def _proj(tmp_path):
    return tmp_path / "claude" / "projects" / "-home-u-proj"


def test_streamed_pieces_count_once_with_the_largest_usage(conn, tmp_path):
    write_lines(
        _proj(tmp_path) / "s.jsonl",
        [
            claude_assistant(msg_id="m1", out=8, tools=[("t1", "Read")]),
            claude_assistant(msg_id="m1", out=400, tools=[("t2", "Grep")]),
            claude_assistant(msg_id="m1", out=400, tools=[("t3", "Read")]),
        ],
    )
    run_scan(conn, tmp_path / "claude")
    rows = turn_rows(conn)
    assert len(rows) == 1
    assert rows[0]["output_tokens"] == 400
    # Every piece's tool_use blocks belong to the one response.
    assert json.loads(rows[0]["tools"]) == ["Read", "Grep", "Read"]


def test_dedup_is_global_across_files_of_a_resumed_session(conn, tmp_path):
    write_lines(_proj(tmp_path) / "a.jsonl", [claude_assistant(msg_id="m1", out=10)])
    write_lines(
        _proj(tmp_path) / "b.jsonl",
        [claude_assistant(msg_id="m1", out=50), claude_assistant(msg_id="m2")],
    )
    run_scan(conn, tmp_path / "claude")
    rows = {r["msg_id"]: r for r in turn_rows(conn)}
    assert set(rows) == {"m1", "m2"}
    assert rows["m1"]["output_tokens"] == 50


def test_largest_total_wins_even_when_seen_first(conn, tmp_path):
    write_lines(_proj(tmp_path) / "a.jsonl", [claude_assistant(msg_id="m1", out=300)])
    run_scan(conn, tmp_path / "claude")
    write_lines(_proj(tmp_path) / "b.jsonl", [claude_assistant(msg_id="m1", out=5)])
    run_scan(conn, tmp_path / "claude")
    assert [r["output_tokens"] for r in turn_rows(conn)] == [300]
    assert reports.totals(conn).output_tokens == 300


def test_sidechain_replay_of_a_parent_message_is_dropped(conn, tmp_path):
    write_lines(
        _proj(tmp_path) / "s.jsonl",
        [claude_assistant(msg_id="m1", req_id="r1", out=100)],
    )
    write_lines(
        _proj(tmp_path) / "s" / "subagents" / "agent-abc.jsonl",
        [
            claude_assistant(
                msg_id="m1", req_id="r-replay", out=100, sidechain=True, agent_id="abc"
            ),
            claude_assistant(msg_id="m9", req_id="r9", out=7, sidechain=True, agent_id="abc"),
        ],
    )
    run_scan(conn, tmp_path / "claude")
    rows = {r["msg_id"]: r for r in turn_rows(conn)}
    assert set(rows) == {"m1", "m9"}
    assert rows["m1"]["is_sidechain"] == 0
    assert (rows["m9"]["is_sidechain"], rows["m9"]["subagent"], rows["m9"]["agent"]) == (
        1,
        "abc",
        "abc",
    )


def test_main_thread_line_replaces_a_sidechain_copy_seen_earlier(conn, tmp_path):
    write_lines(
        _proj(tmp_path) / "s" / "subagents" / "agent-abc.jsonl",
        [claude_assistant(msg_id="m1", req_id="r-side", out=100, sidechain=True, agent_id="abc")],
    )
    run_scan(conn, tmp_path / "claude")
    write_lines(_proj(tmp_path) / "s.jsonl", [claude_assistant(msg_id="m1", req_id="r1", out=100)])
    run_scan(conn, tmp_path / "claude")
    rows = turn_rows(conn)
    assert [(r["msg_id"], r["is_sidechain"]) for r in rows] == [("m1", 0)]
    assert reports.totals(conn).turns == 1


def test_synthetic_and_zero_usage_lines_are_not_turns_and_not_models(conn, tmp_path):
    write_lines(
        _proj(tmp_path) / "s.jsonl",
        [
            claude_assistant(
                msg_id="e1", model="<synthetic>", inp=0, out=0, extra={"isApiErrorMessage": True}
            ),
            claude_assistant(msg_id="z1", inp=0, out=0),
            claude_assistant(msg_id="m1"),
        ],
    )
    run_scan(conn, tmp_path / "claude")
    assert [r["msg_id"] for r in turn_rows(conn)] == ["m1"]
    models = [r["model"] for r in reports.cost_report(conn, by="model", tz="UTC")["rows"]]
    assert models == ["claude-haiku-4-5-20251001"]


def test_invalid_lines_are_counted_malformed_and_skipped(conn, tmp_path):
    lines = [
        claude_assistant(msg_id="ok"),
        '{"type":"assistant","message":{"id":"cut","usage":{"input_tokens":7',
        claude_assistant(msg_id="badts", extra={"timestamp": "yesterday"}),
        claude_assistant(msg_id="badver", extra={"version": "beta"}),
        claude_assistant(msg_id="emptyreq", req_id=""),
        claude_assistant(msg_id="", req_id="r"),
        claude_assistant(msg_id="nulltok").replace('"output_tokens": 20', '"output_tokens": null'),
        claude_assistant(msg_id="strtok").replace('"input_tokens": 10', '"input_tokens": "10"'),
        "not json at all",
        claude_user(),
        "",
    ]
    write_lines(_proj(tmp_path) / "s.jsonl", lines)
    result = run_scan(conn, tmp_path / "claude")
    assert [r["msg_id"] for r in turn_rows(conn)] == ["ok"]
    assert result.malformed == 8
    assert conn.execute("SELECT malformed FROM files").fetchone()[0] == 8


def test_usage_without_message_id_is_not_summed(conn, tmp_path):
    line = json.loads(claude_assistant(msg_id="x"))
    del line["message"]["id"]
    write_lines(_proj(tmp_path) / "s.jsonl", [json.dumps(line)])
    result = run_scan(conn, tmp_path / "claude")
    assert turn_rows(conn) == []
    assert result.malformed == 1


def test_cache_creation_split_and_fallback_to_5m(conn, tmp_path):
    write_lines(
        _proj(tmp_path) / "s.jsonl",
        [
            claude_assistant(msg_id="split", cache_write=1500, w5=300, w1=1200),
            claude_assistant(msg_id="flat", cache_write=50),
        ],
    )
    run_scan(conn, tmp_path / "claude")
    rows = {r["msg_id"]: r for r in turn_rows(conn)}
    assert (rows["split"]["cache_write_5m_tokens"], rows["split"]["cache_write_1h_tokens"]) == (
        300,
        1200,
    )
    assert (rows["flat"]["cache_write_5m_tokens"], rows["flat"]["cache_write_1h_tokens"]) == (50, 0)


def test_project_comes_from_cwd_branch_and_session_are_kept(conn, tmp_path):
    write_lines(
        _proj(tmp_path) / "s.jsonl",
        [claude_assistant(msg_id="m1", cwd="/work/a.b", branch="feature/x", session="sid-9")],
    )
    run_scan(conn, tmp_path / "claude")
    row = turn_rows(conn)[0]
    assert (row["project"], row["git_branch"], row["session_id"], row["agent"]) == (
        "/work/a.b",
        "feature/x",
        "sid-9",
        "claude",
    )


def test_flat_agent_files_are_sidechains(conn, tmp_path):
    write_lines(
        _proj(tmp_path) / "agent-f00.jsonl", [claude_assistant(msg_id="m1", agent_id="f00")]
    )
    run_scan(conn, tmp_path / "claude")
    assert turn_rows(conn)[0]["is_sidechain"] == 1


def test_costusd_is_kept_as_reported_cost(conn, tmp_path):
    write_lines(
        _proj(tmp_path) / "s.jsonl", [claude_assistant(msg_id="m1", extra={"costUSD": 0.5})]
    )
    run_scan(conn, tmp_path / "claude")
    row = turn_rows(conn)[0]
    assert row["reported_pico"] == 500_000_000_000
    display = reports.totals(conn, mode="display")
    assert display.cost_pico == 500_000_000_000


def test_claude_config_dir_env_lists_several_roots(conn, tmp_path, monkeypatch):
    from clawtrace.sources import SOURCES

    claude_roots = SOURCES["claude-code"].roots

    a, b = tmp_path / "a", tmp_path / "b"
    (a / "projects").mkdir(parents=True)
    (b / "projects").mkdir(parents=True)
    monkeypatch.setenv("CLAUDE_CONFIG_DIR", f"{a},{b}")
    assert claude_roots() == [a / "projects", b / "projects"]
    monkeypatch.delenv("CLAUDE_CONFIG_DIR")
    home = tmp_path / "user-home"
    assert claude_roots() == [
        home / ".config" / "claude" / "projects",
        home / ".claude" / "projects",
    ]


def test_roots_inside_each_other_list_every_transcript_once(tmp_path):
    """A root given inside another (or around one given before) adds no transcript twice, in
    either order: the first root to reach a file names it."""
    from clawtrace.sources.base import Discovery
    from clawtrace.sources.claude_code import ClaudeCode

    outer = tmp_path / "projects"
    for n, rel in enumerate(("-a/s1.jsonl", "-a/s1/subagents/agent-x.jsonl", "-b/s2.jsonl")):
        write_lines(outer / rel, [claude_assistant(msg_id=f"m{n}", req_id=f"r{n}")])
    inner = outer / "-a" / "s1"
    every = sorted(str(p) for p in outer.rglob("*.jsonl"))
    sub = str(inner / "subagents" / "agent-x.jsonl")
    for roots in ([outer, inner], [inner, outer], [inner, outer, inner]):
        found = Discovery()
        listed = [(e.path, e.ctx["project_dir"]) for e in ClaudeCode().walk(roots, found)]
        assert sorted(path for path, _project in listed) == every, roots
        # Named by the first root that reaches them.
        assert dict(listed)[sub] == ("-a" if roots[0] == outer else "subagents"), roots
        assert found.roots_found == roots[:2]
