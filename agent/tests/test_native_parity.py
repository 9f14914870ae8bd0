"""The C scanner and the C writer give exactly what the Python code gives.

`clawtrace._native` classifies log lines by the rules of the Python parsers and hands back every
line it is unsure about; `clawtrace._ingest` runs a big scan's whole pipeline in C. Both are
held here to the pure-Python pipeline (the reference): line by line on generated, mutated and
random input, and store by store (turns, rollups, tool rollups, files) on a generated corpus,
cold and incremental. Skipped where the extensions are not built.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
from clawtrace import scan as scan_module
from clawtrace import store
from clawtrace.config import Config
from clawtrace.sources import SOURCES, base
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from .conftest import claude_assistant, needs_native, oc_assistant, oc_header
from .test_corpus_truth import corpus

NATIVE = base.NATIVE


@pytest.fixture(autouse=True)
def _native_in_use():
    needs_native(NATIVE)


@pytest.fixture
def _native_writer():
    needs_native(scan_module.ingest.ingest_module())


def _parse_both(source: str, data: bytes, ctx: dict, state: dict | None = None):
    out = []
    for native in (NATIVE, None):
        saved = base.NATIVE
        base.NATIVE = native
        try:
            r = SOURCES[source].parse(data, ctx, state)
        finally:
            base.NATIVE = saved
        out.append((r.consumed, r.lines, r.malformed, r.turn_lines, r.skipped, r.turns, r.state))
    return out


CLAUDE_CTX = {"project_dir": "-home-u-p", "subagent_file": False, "session_hint": "hint"}
OC_CTX = {"agent": "main", "session_hint": "s1", "subagent": False, "session_key": None}


# --- OpenClaw's sessions.json ---------------------------------------------------------------

_INDEX_VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**64 - 1),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=12),
    st.lists(st.integers(), max_size=2),
    st.dictionaries(st.text(max_size=4), st.text(max_size=4), max_size=2),
)
_INDEX_FIELDS = st.sampled_from(
    ["sessionId", "sessionFile", "spawnedBy", "spawnDepth", "label", "updatedAt", "origin"]
)


@given(
    st.dictionaries(
        st.text(max_size=30),
        st.one_of(st.dictionaries(_INDEX_FIELDS, _INDEX_VALUES, max_size=5), _INDEX_VALUES),
        max_size=8,
    )
)
@settings(max_examples=300, deadline=None)
def test_the_sessions_index_reads_the_same_fields_in_c_and_in_python(tmp_path_factory, index):
    from clawtrace.sources import openclaw

    raw = json.dumps(index).encode()
    path = tmp_path_factory.mktemp("index") / "sessions.json"
    path.write_bytes(raw)
    assert NATIVE.openclaw_index(str(path)) == openclaw._index_members(raw)


@pytest.mark.parametrize(
    "raw",
    [
        b'{"k": {"sessionId": "a"}, "k": {"sessionId": "b", "spawnDepth": 2}, "j": 1, "k": 3}',
        b'{"k": {"spawnDepth": true, "sessionFile": 7}, "m": {"spawnDepth": 1.0}}',
        b'{"k": {"spawnDepth": 18446744073709551615, "sessionId": "\\u00e9\\u0000x"}}',
        b'{"k": {"sessionId": "a"}}  ',
        b"[1, 2]",
        b'"text"',
        b"",
        b'{"k": {"sessionId": ',
        b'{"k": {"sessionId": "\\ud800"}}',
        b'{"k": 1e999}',
        b"\xef\xbb\xbf{}",
        b'{"k": {"sessionId": "\xff"}}',
    ],
)
def test_odd_sessions_indexes_read_the_same_in_c_and_in_python(raw, tmp_path):
    """(A key given twice: C lists every copy, Python's dict keeps the last at the first's
    place; the entries read from them must be the same.)"""
    from clawtrace.sources import openclaw

    def entries(members):
        return members and openclaw._index_entries(members, "main", {"a.jsonl", "b.jsonl"})

    path = tmp_path / "sessions.json"
    path.write_bytes(raw)
    assert entries(NATIVE.openclaw_index(str(path))) == entries(openclaw._index_members(raw))


def test_a_sessions_index_that_cannot_be_read_is_an_os_error(tmp_path):
    with pytest.raises(FileNotFoundError):
        NATIVE.openclaw_index(str(tmp_path / "sessions.json"))
    (tmp_path / "dir.json").mkdir()
    with pytest.raises(OSError):
        NATIVE.openclaw_index(str(tmp_path / "dir.json"))


# --- line level ------------------------------------------------------------------------------


def _mutations(line: str, rng: random.Random) -> list[str]:
    """Variants of a valid line that hit the rules' edges (and the classifiers' deferrals)."""
    out = [line]
    obj = json.loads(line)
    variants = []

    def variant(fn):
        o = json.loads(line)
        try:
            fn(o)
        except (KeyError, TypeError, IndexError):
            return
        variants.append(json.dumps(o, ensure_ascii=rng.random() < 0.5))

    usage_paths = (("message", "usage"),)
    for path in usage_paths:
        for key in ("input_tokens", "output_tokens", "cache_read_input_tokens", "input", "output"):
            for value in (1.0, 2.5, -1, None, True, "7", 10**12, 10**13, 2**64, 0):

                def set_value(o, key=key, value=value, path=path):
                    u = o
                    for p in path:
                        u = u[p]
                    u[key] = value

                variant(set_value)
    for ts in (
        "2026-02-10T10:00:06Z",
        "2026-02-10T10:00:06.1Z",
        "2026-02-10T10:00:06.1234567Z",
        "2026-02-10 10:00:06",
        "2026-02-10T10:00:06+05:30",
        "2026-02-10T10:00:06-0800",
        "2026-02-10T10:00Z",
        "2026-02-30T10:00:00Z",
        "2026-02-10T24:00:00Z",
        "yesterday",
        "\uff12\uff10\uff12\uff16-02-10T10:00:06Z",  # full-width digits
        1770717606000,
        None,
    ):
        variant(lambda o, ts=ts: o.__setitem__("timestamp", ts))
    for version in ("2.1.37", "beta", "\u0662.\u0661.\u0663", None, 7):  # Arabic-Indic digits
        variant(lambda o, version=version: o.__setitem__("version", version))
    variant(
        lambda o: o["message"].__setitem__("content", [{"type": "tool_use", "id": 5, "name": "X"}])
    )
    variant(lambda o: o["message"].__setitem__("content", [{"type": "tool_use", "name": "Y"}]))
    variant(lambda o: o["message"].__setitem__("content", "plain"))
    variant(lambda o: o.__setitem__("requestId", ""))
    variant(lambda o: o.__setitem__("requestId", None))
    variant(lambda o: o.__setitem__("sessionId", ""))
    variant(lambda o: o.__setitem__("costUSD", 1e300))
    variant(lambda o: o.__setitem__("isSidechain", True))
    variant(lambda o: o.__setitem__("agentId", "abc"))
    variant(lambda o: o.__setitem__("cwd", "/ünïcode/ path"))
    variant(
        lambda o: o["message"]["usage"].__setitem__(
            "cache_creation", {"ephemeral_1h_input_tokens": 9}
        )
    )
    variant(
        lambda o: o["message"]["usage"].__setitem__("server_tool_use", {"web_search_requests": 2.0})
    )
    variant(lambda o: o["message"].__setitem__("model", "<synthetic>"))
    variant(lambda o: o["message"].__setitem__("usage", None))
    variant(lambda o: o.__setitem__("type", "user"))
    out.extend(variants)
    raw = line.encode()
    for _ in range(6):
        i = rng.randrange(len(raw))
        out.append(
            (raw[:i] + bytes([rng.randrange(256)]) + raw[i + 1 :]).decode("utf-8", "replace")
        )
        out.append(raw[: rng.randrange(len(raw))].decode("utf-8", "replace"))
    out.append(line.replace("{", '{"dup": 1, "dup": 2, ', 1))
    out.append('{"type": "assistant", "x": ' + "[" * 1100 + "]" * 1100 + "}")
    del obj
    return out


@pytest.mark.parametrize("seed", range(4))
def test_claude_lines_parse_the_same_with_and_without_the_c_scanner(seed):
    rng = random.Random(seed)
    base_lines = [
        claude_assistant(msg_id=f"m{i}", out=i + 1, tools=[("t1", "Read"), ("t2", "Bash")])
        for i in range(4)
    ]
    lines: list[str] = []
    for line in base_lines:
        lines.extend(_mutations(line, rng))
    rng.shuffle(lines)
    data = ("\n".join(lines) + "\n").encode()
    native, python = _parse_both("claude-code", data, CLAUDE_CTX)
    assert native == python


@pytest.mark.parametrize("seed", range(4))
def test_openclaw_lines_parse_the_same_with_and_without_the_c_scanner(seed):
    rng = random.Random(seed)
    lines = [oc_header("s1")]
    for i in range(4):
        line = oc_assistant(f"e{i}", inp=i + 1, tools=["Read", "Bash"])
        obj = json.loads(line)
        lines.append(line)
        for key in ("input", "output", "totalTokens"):
            for value in (1.5, None, True, "3", -2, 10**12):
                o = json.loads(line)
                o["message"]["usage"][key] = value
                lines.append(json.dumps(o))
        o = json.loads(line)
        del o["message"]["model"]
        lines.append(json.dumps(o))
        o = json.loads(line)
        o["timestamp"] = None
        o["message"]["timestamp"] = rng.choice([1770796802500, 1.5e12, True, "x", -1])
        lines.append(json.dumps(o))
        lines.append(json.dumps({"type": "model_change", "provider": "zai", "modelId": "glm-4.7"}))
        lines.append(json.dumps({"type": "model_change", "provider": 3, "modelId": ""}))
        lines.append(
            json.dumps(
                {"type": "custom", "customType": "model-snapshot", "data": {"modelId": "m2"}}
            )
        )
        raw = line.encode()
        for _ in range(4):
            i = rng.randrange(len(raw))
            lines.append(raw[:i].decode("utf-8", "replace"))
        del obj
    rng.shuffle(lines[1:])
    data = ("\n".join(lines) + "\n").encode()
    native, python = _parse_both("openclaw", data, OC_CTX, {"offset": 17})
    assert native == python


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats() | st.text(max_size=8),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(
            st.sampled_from(
                [
                    "type",
                    "message",
                    "usage",
                    "id",
                    "model",
                    "input_tokens",
                    "output_tokens",
                    "requestId",
                    "sessionId",
                    "timestamp",
                    "content",
                    "name",
                    "role",
                    "input",
                    "output",
                    "cacheRead",
                    "provider",
                    "cost",
                    "total",
                    "cwd",
                    "version",
                ]
            ),
            children,
            max_size=6,
        )
    ),
    max_leaves=25,
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(json_values, min_size=1, max_size=8), st.sampled_from(["claude-code", "openclaw"]))
def test_random_json_lines_parse_the_same_with_and_without_the_c_scanner(values, source):
    lines = []
    for v in values:
        if isinstance(v, dict):
            v.setdefault("type", "assistant" if source == "claude-code" else "message")
        try:
            lines.append(json.dumps(v, allow_nan=True))
        except ValueError:
            continue
    data = ("\n".join(lines) + "\n").encode()
    ctx = CLAUDE_CTX if source == "claude-code" else OC_CTX
    native, python = _parse_both(source, data, ctx)
    assert native == python


# --- store level -----------------------------------------------------------------------------

TURN_FIELDS = (
    "key_hash, msg_hash, file_id, source, agent, project, session_id, subagent, is_sidechain, "
    "model, provider, speed, ts, input_tokens, output_tokens, cache_read_tokens, "
    "cache_write_5m_tokens, cache_write_1h_tokens, web_search_requests, cost_pico, "
    "price_source, reported_pico, cache_savings_pico, cache_write_pico, git_branch, tools"
)
ROLLUP_SUMS = ", ".join(f"SUM({m})" for m in store.ROLLUP_METRICS)


def _snapshot(conn) -> dict:
    return {
        "turns": sorted(conn.execute(f"SELECT {TURN_FIELDS} FROM turns_wide").fetchall()),  # noqa: S608
        "rollup": sorted(
            conn.execute(
                f"SELECT bucket, context_id, model_id, {ROLLUP_SUMS}, MIN(first_ts), "  # noqa: S608
                "MAX(last_ts) FROM rollup GROUP BY 1, 2, 3 HAVING SUM(turns) <> 0"
            ).fetchall()
        ),
        "tools": sorted(
            conn.execute(
                "SELECT bucket, context_id, model_id, tool, SUM(calls), SUM(turns), "
                "round(SUM(auto_pico)), round(SUM(calc_pico)), round(SUM(display_pico)) "
                "FROM tool_rollup GROUP BY 1, 2, 3, 4 HAVING SUM(turns) <> 0"
            ).fetchall()
        ),
        "files": sorted(
            conn.execute(
                "SELECT path, size, offset, lines, malformed, turn_lines, state_json, head_hash "
                "FROM files"
            ).fetchall()
        ),
    }


def _same(native: dict, python: dict) -> None:
    for part in ("turns", "rollup", "tools", "files"):
        a, b = native[part], python[part]
        only_native = sorted(set(a) - set(b))[:3]
        only_python = sorted(set(b) - set(a))[:3]
        assert (part, only_native, only_python, len(a), len(b)) == (part, [], [], len(b), len(b))


def _scan(db: Path, data: Path, *, native: bool, monkeypatch) -> None:
    monkeypatch.setattr(base, "NATIVE", NATIVE if native else None)
    conn = store.connect(db)
    scan_module.scan(
        conn,
        Config(),
        claude_dirs=[str(data / "claude")],
        openclaw_dirs=[str(data / "openclaw")],
        workers=2 if native else 1,
    )
    conn.close()


@pytest.fixture(params=["kept", "dropped after every commit"])
def interned(request):
    """The native writer keeps the strings it interns, and the dimension ids it has seen, across
    commits until they and their indexes pass a size (8 MB), then frees them all: both must
    store the same as the Python pipeline."""
    ingest = scan_module.ingest.ingest_module()
    needs_native(ingest)
    if request.param == "kept":
        yield
        return
    before = ingest.intern_limit(0)  # (the worker processes are forked with it)
    try:
        yield
    finally:
        ingest.intern_limit(before)


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    data = tmp_path_factory.mktemp("parity-corpus")
    corpus.generate(data, 3000, seed=11, workers=1, malformed_rate=0.02)
    return data


@pytest.mark.usefixtures("_native_writer", "interned")
def test_a_native_bulk_scan_stores_what_the_python_pipeline_stores(
    generated, tmp_path, monkeypatch
):
    # Force the worker pool even on a small corpus: the native writer runs in the workers.
    monkeypatch.setattr(scan_module.run, "PARALLEL_MIN_BYTES", 0)
    monkeypatch.setattr(scan_module.pool, "BATCH_FILES", 8)
    _scan(tmp_path / "native.db", generated, native=True, monkeypatch=monkeypatch)
    _scan(tmp_path / "python.db", generated, native=False, monkeypatch=monkeypatch)
    native = _snapshot(store.connect(tmp_path / "native.db"))
    python = _snapshot(store.connect(tmp_path / "python.db"))
    _same(native, python)
    assert len(native["turns"]) == 3000


@pytest.mark.usefixtures("_native_writer", "interned")
def test_native_and_python_incremental_scans_agree(generated, tmp_path, monkeypatch):
    """Appends into a store that has data: the native writer goes through the unique index,
    merges repeated keys by the same rule and leaves old buckets to be recomputed."""
    import shutil

    data = tmp_path / "data"
    shutil.copytree(generated, data)
    monkeypatch.setattr(scan_module.run, "PARALLEL_MIN_BYTES", 0)
    monkeypatch.setattr(scan_module.pool, "BATCH_FILES", 8)
    for name in ("native", "python"):
        _scan(tmp_path / f"{name}.db", data, native=True, monkeypatch=monkeypatch)
    # More of the same: every Claude file gets a copy of its first assistant line with a larger
    # output (a later streamed piece), and a new turn.
    rng = random.Random(3)
    for path in sorted((data / "claude").rglob("*.jsonl"))[:40]:
        lines = path.read_text().splitlines()
        first = next((ln for ln in lines if '"type":"assistant"' in ln), None)
        if first is None:
            continue
        obj = json.loads(first)
        if not isinstance(obj.get("message", {}).get("usage"), dict):
            continue
        obj["message"]["usage"]["output_tokens"] = (
            obj["message"]["usage"].get("output_tokens", 0) + 5
        )
        extra = dict(obj, message=dict(obj["message"], id=f"msg_new{rng.randrange(10**9)}"))
        with open(path, "a") as fh:
            fh.write(json.dumps(obj, separators=(",", ":")) + "\n")
            fh.write(json.dumps(extra, separators=(",", ":")) + "\n")
    _scan(tmp_path / "native.db", data, native=True, monkeypatch=monkeypatch)
    _scan(tmp_path / "python.db", data, native=False, monkeypatch=monkeypatch)
    native = _snapshot(store.connect(tmp_path / "native.db"))
    python = _snapshot(store.connect(tmp_path / "python.db"))
    del native["files"], python["files"]
    for part in ("turns", "rollup", "tools"):
        assert set(native[part]) == set(python[part]), part


def test_an_interrupted_bulk_load_is_merged_on_the_next_scan(tmp_path, monkeypatch):
    """A bulk load appends without the unique key index; if it dies before merging repeated
    keys, the next scan merges them before building the index again."""
    from .conftest import run_scan, turn_rows, write_lines

    f = write_lines(
        tmp_path / "claude" / "projects" / "-p" / "s.jsonl",
        [claude_assistant(msg_id="m1", out=5), claude_assistant(msg_id="m2", out=7)],
    )
    conn = store.connect(tmp_path / "db.sqlite")
    run_scan(conn, tmp_path / "claude")
    # What a killed bulk load leaves: no key index, and the same key twice.
    with conn:
        conn.execute("DROP INDEX turns_key")
        conn.execute(
            "INSERT INTO turns (key_hash, msg_hash, file_id, context_id, model_id, ts, "
            "input_tokens, output_tokens, cache_read_tokens, cache_write_5m_tokens, "
            "cache_write_1h_tokens, web_search_requests, cost_pico, price_source_id, "
            "reported_pico, cache_savings_pico, cache_write_pico, toolset_id) "
            "SELECT key_hash, msg_hash, file_id, context_id, model_id, ts, input_tokens, "
            "output_tokens + 100, cache_read_tokens, cache_write_5m_tokens, "
            "cache_write_1h_tokens, web_search_requests, cost_pico, price_source_id, "
            "reported_pico, cache_savings_pico, cache_write_pico, toolset_id "
            "FROM turns WHERE id = 1"
        )
    f.touch()
    run_scan(conn, tmp_path / "claude")
    rows = turn_rows(conn)
    assert sorted(r["output_tokens"] for r in rows) == [7, 105]
    assert conn.execute("SELECT SUM(turns), SUM(output_tokens) FROM rollup").fetchone() == (2, 112)
    names = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'index'")}
    assert "turns_key" in names


_SETTLE_CONTEXTS = [(0, "main"), (1, "agent-a"), (1, "agent-b")]  # (is_sidechain, subagent)


def _bulk_loaded_store(path: Path, turns: list[tuple[int, ...]]) -> dict[int, int]:
    """A store as a bulk load leaves it: `turns` appended without the unique key index (as
    (key, context #, file, ts, output tokens, toolset #)), the rollups summing them. Returns
    the context ids by number."""
    conn = store.connect(path)
    seeds = [
        {
            "source": "claude-code",
            "agent": "claude-code",
            "project": "/p",
            "session_id": "s1",
            "subagent": subagent,
            "is_sidechain": side,
            "provider": "anthropic",
            "model": "claude-sonnet-4-5",
            "ts": 1,
            "dedup_key": f"seed-{n}",
            "tools": [["Read"], ["Bash", "Edit"], []][n],
        }
        for n, (side, subagent) in enumerate(_SETTLE_CONTEXTS)
    ]
    with conn:
        store.turns_write_named(conn, seeds)
    seeded = conn.execute(
        "SELECT context_id, model_id, toolset_id FROM turns ORDER BY id"
    ).fetchall()
    contexts = {n: row[0] for n, row in enumerate(seeded)}
    toolsets = [row[2] for row in seeded]
    with conn:
        conn.execute("DELETE FROM turns")
        store.secondary_indexes_drop(conn, keys=True)
        conn.executemany(
            "INSERT INTO turns (key_hash, msg_hash, file_id, context_id, model_id, ts, "
            "input_tokens, output_tokens, cache_read_tokens, cache_write_5m_tokens, "
            "cache_write_1h_tokens, web_search_requests, cost_pico, price_source_id, "
            "reported_pico, cache_savings_pico, cache_write_pico, toolset_id) "
            "VALUES (?, ?, ?, ?, ?, ?, 10, ?, 0, 0, 0, 0, ?, ?, NULL, 0, 0, ?)",
            [
                (
                    key,
                    key // 4,  # (a message's pieces share its id: the key decides the message)
                    file_id,
                    contexts[ctx],
                    seeded[0][1],
                    ts,
                    out,
                    out * 1000,
                    store.NONE_SOURCE_ID,
                    toolsets[tools],
                )
                for key, ctx, file_id, ts, out, tools in turns
            ],
        )
        store.rollups_refresh(conn, full=True)
    conn.close()
    return contexts


def _settled(path: Path) -> dict:
    conn = store.connect(path)
    try:
        return {
            "turns": conn.execute("SELECT * FROM turns ORDER BY id").fetchall(),
            "rollup": sorted(
                conn.execute(
                    f"SELECT bucket, context_id, model_id, {ROLLUP_SUMS} FROM rollup "  # noqa: S608
                    "GROUP BY 1, 2, 3 HAVING SUM(turns) <> 0"
                ).fetchall()
            ),
            "tools": sorted(
                conn.execute(
                    "SELECT bucket, context_id, model_id, tool, SUM(calls), SUM(turns), "
                    "round(SUM(calc_pico)) FROM tool_rollup GROUP BY 1, 2, 3, 4 "
                    "HAVING SUM(turns) <> 0"
                ).fetchall()
            ),
        }
    finally:
        conn.close()


def test_an_interrupted_bulk_load_loses_its_sidechain_replays_on_the_next_scan(
    tmp_path, monkeypatch
):
    from .conftest import run_scan, turn_rows, write_lines

    root = tmp_path / "claude" / "projects" / "-p"
    main = write_lines(root / "s.jsonl", [claude_assistant(msg_id="m1", out=5)])
    write_lines(
        root / "s" / "subagents" / "agent-a1.jsonl",
        [
            claude_assistant(msg_id="m1", req_id="req_9", out=5, sidechain=True, agent_id="a1"),
            claude_assistant(msg_id="m2", out=7, sidechain=True, agent_id="a1"),
        ],
    )
    conn = store.connect(tmp_path / "db.sqlite")
    # What a killed bulk load leaves: its replay still there, and no key index.
    with monkeypatch.context() as patch:
        patch.setattr(store.writer, "sidechain_replays_among", lambda *_a: [])
        run_scan(conn, tmp_path / "claude")
    assert len(turn_rows(conn)) == 3
    with conn:
        conn.execute("DROP INDEX turns_key")
    main.touch()
    run_scan(conn, tmp_path / "claude")
    assert sorted(r["output_tokens"] for r in turn_rows(conn)) == [5, 7]
    assert conn.execute("SELECT SUM(turns), SUM(output_tokens) FROM rollup").fetchone() == (2, 12)


@given(
    turns=st.lists(
        st.tuples(
            st.integers(0, 23),  # key: few of them, most met more than once
            st.integers(0, len(_SETTLE_CONTEXTS) - 1),
            st.integers(1, 4),  # file
            st.integers(0, 3) | st.integers(0, 10**9),  # ts (ties matter to the merge)
            st.integers(0, 40),  # output tokens
            st.integers(0, 2),  # toolset
        ),
        max_size=60,
    ),
    journals=st.integers(1, 3),
    part_records=st.sampled_from([1, 5, 1 << 19]),
)
@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
def test_settling_a_bulk_load_from_its_journals_follows_the_rules_of_the_store(
    turns, journals, part_records, tmp_path_factory
):
    """The workers' key journals instead of the unique key index: the rows of a key written
    twice merge as store.bulk_dedup merges them, then the sidechain replays go as
    store.sidechain_replays finds them (a sidechain row goes when another row holds its message
    on the main thread, or on a sidechain seen earlier), and the rollups follow."""
    import shutil
    import struct

    ingest = scan_module.ingest.ingest_module()
    needs_native(ingest)
    folder = tmp_path_factory.mktemp("settle")
    base_db = folder / "loaded.db"
    contexts = _bulk_loaded_store(base_db, turns)
    # The journals, as the workers write them: each row's (key, rowid, message, context).
    rows = [(key, rowid, key // 4, contexts[ctx]) for rowid, (key, ctx, *_) in enumerate(turns, 1)]
    paths = [folder / f"keys-{i}" for i in range(journals)]
    for i, path in enumerate(paths):
        path.write_bytes(b"".join(struct.pack("=4q", *row) for row in rows[i::journals]))
    for suffix in ("python", "native"):
        shutil.copy(base_db, folder / f"{suffix}.db")

    conn = store.connect(folder / "python.db")
    with conn:
        writer = store.TurnWriter(store.Dims(), store.rollup_rowid_max(conn))
        merged_away = store.bulk_dedup(conn, writer)
        replays = writer.delete(conn, store.sidechain_replays(conn, 0))
        store.rollups_refresh(conn)
    conn.close()

    settler = ingest.Ingest(
        str(folder / "native.db"),
        lambda *a: None,
        lambda *a: False,
        store.REPORTED_SOURCE_ID,
        store.NONE_SOURCE_ID,
        [],
        2,
    )
    assert settler.settle([str(p) for p in paths], part_records) == (merged_away, replays)
    del settler
    assert _settled(folder / "native.db") == _settled(folder / "python.db")
