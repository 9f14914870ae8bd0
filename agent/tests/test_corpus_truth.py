"""The scan's totals on a generated corpus equal the generator's own ground truth, exactly.

`bench/corpus.py` writes a realistic tree of both formats (streamed duplicates, resumed sessions,
sidechain replays, synthetic errors, mirrors, archives, backups, malformed lines, 30 days across a
DST change) and records, while writing, which API calls were really billed. Nothing here parses
the files back to find the expected figures.
"""

from __future__ import annotations

import shutil
from datetime import datetime
from pathlib import Path

import orjson
import pytest
from clawtrace import reports, scan, store
from clawtrace.reports import Filters

from tests.conftest import bench_module

KEYS = ("turns", "input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens")

corpus = bench_module("corpus.py")


def _scan(home: Path, data: Path, workers: int | None = None, progress=None) -> tuple:
    conn = store.connect(home / "clawtrace.db")
    result = scan.scan(
        conn,
        claude_dirs=[str(data / "claude")],
        openclaw_dirs=[str(data / "openclaw")],
        workers=workers,
        progress=progress,
    )
    return conn, result


def _pick(row: dict) -> tuple[int, ...]:
    return tuple(row[k] for k in KEYS)


def _by_model(conn) -> dict[str, tuple[int, ...]]:
    report = reports.cost_report(conn, tz="UTC", by="model")
    return {row["model"]: _pick(row) for row in report["rows"]}


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    """A few thousand turns of both formats, with a high malformed-line rate."""
    data = tmp_path_factory.mktemp("corpus")
    truth = corpus.generate(data, 4000, seed=7, workers=1, malformed_rate=0.03)
    return data, truth


@pytest.fixture(scope="module")
def scanned(generated, tmp_path_factory):
    data, truth = generated
    home = tmp_path_factory.mktemp("home")
    conn, result = _scan(home, data, workers=2)
    yield conn, result, home, data, truth
    conn.close()


def test_truth_is_written_beside_the_corpus_and_covers_every_tricky_case(generated):
    data, truth = generated
    assert orjson.loads((data / "truth.json").read_bytes()) == truth
    counts = truth["counts"]
    for case in (
        "claude_streamed_extra_pieces",
        "claude_resumed_copied_assistant_lines",
        "claude_sidechain_replays",
        "claude_synthetic_lines",
        "claude_subagent_files_2.1",
        "openclaw_delivery_mirrors",
        "openclaw_zero_usage_errors",
        "openclaw_subagent_sessions",
    ):
        assert counts.get(case, 0) > 0, case
    assert truth["totals"]["turns"] == 4000
    assert truth["malformed"]["total"] > 0


def test_the_truth_books_each_openclaw_turn_at_the_time_written_on_its_line(tmp_path, monkeypatch):
    """The ledger must record a turn at the timestamp its line carries: a turn booked even a
    few milliseconds later lands in the next 15-minute slot, or day, now and then (seen on a
    4M-turn corpus: six turns on the wrong UTC day)."""
    booked: list[int] = []
    turn = corpus.Ledger.turn

    def spy(self, source, *args, **kwargs):
        if source == "openclaw":
            booked.append(args[3])  # (provider, model, kind, ts_ms, ...)
        return turn(self, source, *args, **kwargs)

    monkeypatch.setattr(corpus.Ledger, "turn", spy)
    corpus.generate(tmp_path, 3000, seed=5, formats=("openclaw",), workers=1, malformed_rate=0)
    written: set[int] = set()
    for path in (tmp_path / "openclaw").rglob("*.jsonl*"):
        for line in path.read_bytes().splitlines():
            entry = orjson.loads(line)
            message = entry.get("message") or {}
            if message.get("role") == "assistant" and "usage" in message:
                stamp = datetime.fromisoformat(entry["timestamp"].replace("Z", "+00:00"))
                written.add(int(stamp.timestamp() * 1000))
    assert len(booked) == 3000
    assert [ts for ts in booked if ts not in written] == []


def test_scan_totals_per_model_equal_the_generators_truth(scanned):
    conn, _, _, _, truth = scanned
    want = {row["model"]: _pick(row) for row in truth["by_model"]}
    assert _by_model(conn) == want


@pytest.mark.parametrize("workers", [1, 2])
def test_serial_and_parallel_scans_give_the_same_exact_totals(
    generated, tmp_path, monkeypatch, workers
):
    data, truth = generated
    # Small corpora normally stay serial; force the worker pool so both paths are checked.
    monkeypatch.setattr(scan.run, "PARALLEL_MIN_BYTES", 0, raising=False)
    conn, result = _scan(tmp_path, data, workers=workers)
    assert _by_model(conn) == {row["model"]: _pick(row) for row in truth["by_model"]}
    assert result.turns_total == truth["totals"]["turns"]
    conn.close()


@pytest.mark.parametrize("workers", [1, 2])
def test_the_progress_bar_is_told_every_byte_read_and_the_final_totals(
    generated, tmp_path, monkeypatch, workers
):
    data, _ = generated
    # Parallel: the workers start while the listing goes on, so the totals come at its end.
    monkeypatch.setattr(scan.run, "PARALLEL_MIN_BYTES", 0, raising=False)
    calls: list[tuple] = []
    read = [0]

    def factory(total_bytes: int, files: int, growing: bool = False):
        calls.append(("made", total_bytes, files, growing))

        def tick(n: int, total: int | None = None, files: int | None = None) -> None:
            read[0] += n
            if total is not None:
                calls.append(("totals", total, files))

        return tick

    conn, result = _scan(tmp_path, data, workers=workers, progress=factory)
    conn.close()
    assert read[0] == result.bytes_read > 0
    made = [c for c in calls if c[0] == "made"]
    assert len(made) == 1
    final = [c for c in calls if c[0] == "totals"] or made
    assert final[-1][1:3] == (result.bytes_read, result.files_read)
    if workers == 2:
        assert made[0][3] is True  # shown while the listing still grew
    else:
        assert made[0][3] is False


def test_scan_totals_per_source_and_model_equal_the_generators_truth(scanned):
    conn, _, _, _, truth = scanned
    for source in ("claude-code", "openclaw"):
        want = {r["model"]: _pick(r) for r in truth["by_source_model"] if r["source"] == source}
        report = reports.cost_report(conn, Filters(source=source), tz="UTC", by="model")
        assert {row["model"]: _pick(row) for row in report["rows"]} == want, source


def test_scan_totals_per_utc_day_and_model_equal_the_generators_truth(scanned):
    conn, _, _, _, truth = scanned
    want: dict[str, dict[str, tuple[int, ...]]] = {}
    for r in truth["by_day_model"]:
        want.setdefault(r["model"], {})[r["day"]] = _pick(r)
    for model, days in want.items():
        report = reports.cost_report(conn, Filters(model=model), tz="UTC", by="day")
        assert {row["day"]: _pick(row) for row in report["rows"]} == days, model


@pytest.mark.parametrize("zone", corpus.DEFAULT_TIMEZONES)
def test_local_days_across_dst_changes_and_half_hour_zones_equal_the_truth(scanned, zone):
    conn, _, _, _, truth = scanned
    want: dict[str, tuple[int, ...]] = {}
    for r in truth["by_local_day_model"][zone]:
        prev = want.get(r["day"], (0,) * len(KEYS))
        want[r["day"]] = tuple(a + b for a, b in zip(prev, _pick(r), strict=True))
    report = reports.cost_report(conn, tz=zone, by="day")
    assert {row["day"]: _pick(row) for row in report["rows"]} == want


def test_cache_write_ttls_web_searches_and_sub_agent_turns_equal_the_truth(scanned):
    conn, _, _, _, truth = scanned
    got = {
        (source, model): (cw5, cw1h, web)
        for source, model, cw5, cw1h, web in conn.execute(
            "SELECT source, model, SUM(cache_write_5m_tokens), SUM(cache_write_1h_tokens),"
            " SUM(web_search_requests) FROM turns_wide GROUP BY source, model"
        )
    }
    want = {
        (r["source"], r["model"]): (
            r["cache_write_5m_tokens"],
            r["cache_write_1h_tokens"],
            r["web_search_requests"],
        )
        for r in truth["by_source_model"]
    }
    assert got == want
    sub = dict(
        conn.execute(
            "SELECT source, COUNT(*) FROM turns_wide WHERE is_sidechain = 1 GROUP BY source"
        )
    )
    want_sub = {r["source"]: r["turns"] for r in truth["by_kind"] if r["kind"] == "subagent"}
    assert sub == want_sub


def test_malformed_lines_are_counted_per_file_and_never_billed(scanned):
    conn, result, _, data, truth = scanned
    got = {}
    for path, malformed in conn.execute("SELECT path, malformed FROM files"):
        rel = Path(path).relative_to(data).as_posix()
        got[rel] = malformed
    want = {rel: sum(f["malformed"].values()) for rel, f in truth["files"].items()}
    assert got == want
    assert result.malformed == truth["malformed"]["total"]


def test_backup_files_are_ignored_and_archives_are_read(scanned):
    conn, _, _, _, truth = scanned
    paths = [p for (p,) in conn.execute("SELECT path FROM files")]
    assert not [p for p in paths if p.endswith(".bak")]
    archived = [p for p in paths if ".jsonl.reset." in p or ".jsonl.deleted." in p]
    want = sum(v for k, v in truth["counts"].items() if k.startswith("openclaw_archived_"))
    assert len(archived) == want > 0


def test_the_canary_never_reaches_the_store(scanned):
    conn, _, home, _, _ = scanned
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    for f in home.iterdir():
        if f.is_file():
            assert corpus.CANARY.encode() not in f.read_bytes(), f.name


def test_a_warm_rescan_of_an_unchanged_tree_reads_nothing_and_changes_nothing(scanned):
    conn, _, _, data, _ = scanned
    before = _by_model(conn)
    again = scan.scan(
        conn, claude_dirs=[str(data / "claude")], openclaw_dirs=[str(data / "openclaw")]
    )
    assert again.bytes_read == 0
    assert again.files_read == 0
    assert _by_model(conn) == before


# --- incremental: lines appended after a scan, one of them half-written --------------------


def _claude_turn_line(template: bytes, n: int, usage: dict, ts: str) -> bytes:
    obj = orjson.loads(template)
    obj["uuid"] = f"00000000-0000-4000-8000-{n:012d}"
    obj["timestamp"] = ts
    obj["requestId"] = f"req_011APPENDED{n:014d}"
    obj["message"]["id"] = f"msg_01APPENDED{n:014d}"
    obj["message"]["stop_reason"] = "end_turn"
    obj["message"]["usage"] = usage
    obj.pop("costUSD", None)
    return orjson.dumps(obj)


def _openclaw_turn_line(template: bytes, n: int, usage: dict, ts: str) -> bytes:
    obj = orjson.loads(template)
    obj["id"] = f"ap{n:06d}"
    obj["timestamp"] = ts
    obj["message"]["usage"] = usage
    obj["message"]["stopReason"] = "stop"
    return orjson.dumps(obj)


def _first_line(path: Path, needle: bytes) -> bytes:
    for line in path.read_bytes().splitlines():
        if needle in line:
            try:
                orjson.loads(line)
            except orjson.JSONDecodeError:
                continue
            return line
    raise AssertionError(f"no line with {needle!r} in {path}")


def test_appended_lines_and_a_half_written_last_line_are_picked_up_whole_on_rescan(
    generated, tmp_path
):
    src, truth = generated
    data = tmp_path / "corpus"
    shutil.copytree(src, data)
    conn, _ = _scan(tmp_path / "home", data, workers=1)
    assert _by_model(conn) == {r["model"]: _pick(r) for r in truth["by_model"]}
    malformed_before = conn.execute("SELECT SUM(malformed) FROM files").fetchone()[0]

    # A Claude Code main-session file and an OpenClaw live transcript.
    claude_file = next(
        p
        for p in sorted((data / "claude" / "projects").glob("*/*.jsonl"))
        if not p.name.startswith("agent-") and b'"model":"claude-opus-4-6"' in p.read_bytes()
    )
    oc_file = next(
        p
        for p in sorted((data / "openclaw" / "agents").glob("*/sessions/*.jsonl"))
        if b'"model":"glm-4.7"' in p.read_bytes()
    )
    c_tpl = _first_line(claude_file, b'"model":"claude-opus-4-6"')
    o_tpl = _first_line(oc_file, b'"model":"glm-4.7"')
    c_usage = {
        "input_tokens": 7,
        "cache_creation_input_tokens": 900,
        "cache_read_input_tokens": 12000,
        "cache_creation": {"ephemeral_5m_input_tokens": 400, "ephemeral_1h_input_tokens": 500},
        "output_tokens": 333,
    }
    o_usage = {"input": 1234, "output": 56, "cacheRead": 700, "cacheWrite": 0, "totalTokens": 1990}
    c1 = _claude_turn_line(c_tpl, 1, c_usage, "2026-11-20T10:00:00.000Z")
    c2 = _claude_turn_line(c_tpl, 2, c_usage, "2026-11-20T10:05:00.000Z")
    o1 = _openclaw_turn_line(o_tpl, 1, o_usage, "2026-11-20T11:00:00.000Z")
    o2 = _openclaw_turn_line(o_tpl, 2, o_usage, "2026-11-20T11:05:00.000Z")
    cut_c, cut_o = len(c2) // 2, len(o2) // 2
    with open(claude_file, "ab") as fh:
        fh.write(c1 + b"\n" + c2[:cut_c])
    with open(oc_file, "ab") as fh:
        fh.write(o1 + b"\n" + o2[:cut_o])

    def expect(n_claude: int, n_oc: int) -> dict[str, tuple[int, ...]]:
        want = {r["model"]: list(_pick(r)) for r in truth["by_model"]}
        for model, n, add in (
            ("claude-opus-4-6", n_claude, (1, 7, 333, 12000, 900)),
            ("glm-4.7", n_oc, (1, 1234, 56, 700, 0)),
        ):
            want[model] = [a + n * b for a, b in zip(want[model], add, strict=True)]
        return {m: tuple(v) for m, v in want.items()}

    scan.scan(conn, claude_dirs=[str(data / "claude")], openclaw_dirs=[str(data / "openclaw")])
    assert _by_model(conn) == expect(1, 1)
    # The half-written line is pending, not malformed.
    assert conn.execute("SELECT SUM(malformed) FROM files").fetchone()[0] == malformed_before

    with open(claude_file, "ab") as fh:
        fh.write(c2[cut_c:] + b"\n")
    with open(oc_file, "ab") as fh:
        fh.write(o2[cut_o:] + b"\n")
    scan.scan(conn, claude_dirs=[str(data / "claude")], openclaw_dirs=[str(data / "openclaw")])
    assert _by_model(conn) == expect(2, 2)
    assert conn.execute("SELECT SUM(malformed) FROM files").fetchone()[0] == malformed_before
    conn.close()


def test_reset_renaming_a_live_openclaw_transcript_and_deleting_logs_keep_totals(
    generated, tmp_path
):
    src, truth = generated
    data = tmp_path / "corpus"
    shutil.copytree(src, data)
    conn, _ = _scan(tmp_path / "home", data, workers=1)
    want = {r["model"]: _pick(r) for r in truth["by_model"]}
    assert _by_model(conn) == want

    # `/reset` renames the live transcript: the same entries under a new file name.
    live = next(p for p in sorted((data / "openclaw" / "agents").glob("*/sessions/*.jsonl")))
    live.rename(live.with_name(live.name + ".reset.2026-11-21T09-00-00.000Z"))
    # Claude Code's cleanup deletes old transcripts: history must not shrink.
    for p in sorted((data / "claude" / "projects").glob("*/*.jsonl"))[:5]:
        p.unlink()
    scan.scan(conn, claude_dirs=[str(data / "claude")], openclaw_dirs=[str(data / "openclaw")])
    assert _by_model(conn) == want
    conn.close()
