"""A scan may be killed at any moment and the next one still gets every figure exactly right.

In the spirit of SQLite's crash tests: a generated tree (bench/corpus.py: streamed duplicates,
resumed sessions that copy turns into new files, sidechain replays, malformed lines, archives,
with the generator's own ground truth) is written again round by round as its transcripts grow
(tests/hostile/growth.py: appends, half-written lines, new files, archives renamed). In every
round `clawtrace scan` runs as a subprocess, in a process group of its own (its workers are
forked into it), and is stopped at a moment drawn from a seeded schedule that spans from its
start-up to the end of an uninterrupted scan of the same work (measured first, on a copy of the
store), in one of three ways:

- SIGKILL of the scan process alone (the OOM killer): its workers live on and finish the
  batch they hold;
- SIGKILL of the whole process group (`kill -9 -PGID`, a machine going down);
- SIGINT to the process group (Ctrl-C at a terminal), which must end it with "Aborted!".

Each round ends with a scan that runs to its end, whose "Store holds N turns" must be the
store's count, and whose store must equal, figure for figure, a store filled by one scan of the
same tree from scratch. After the last round the store must equal the generator's truth: turns,
every token total, the cost written in the logs, the cost computed from prices (against the
from-scratch store), per day and per model, per file lines and malformed lines; the rollups must
equal a rebuild from the turns, and `clawtrace doctor` must find nothing wrong.

Knobs (environment): CLAWTRACE_KILLS (kills of each kind, default 20), CLAWTRACE_KILL_SEED.
"""

from __future__ import annotations

import os
import random
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import clawtrace
import orjson
import pytest

from tests.conftest import bench_module, needs_native
from tests.hostile.growth import GrowingTree

corpus = bench_module("corpus.py")

KINDS = ("SIGKILL the scan process", "SIGKILL its process group", "SIGINT its process group")
KILLS_PER_KIND = int(os.environ.get("CLAWTRACE_KILLS", "20"))
SEED = int(os.environ.get("CLAWTRACE_KILL_SEED", "20260307"))
TURNS = 30_000
ROUNDS = 7
# The latest kill, as a share of an uninterrupted scan's time: later ones find it finished.
WINDOW = 0.95
DEADLINE = 180.0  # seconds one scan may take, killed or not, before the test calls it hung
KEYS = ("turns", "input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens")
PACKAGE_DIR = str(Path(clawtrace.__file__).parent)
STORE_HOLDS = re.compile(r"^Store holds ([\d,]+) turns\.$", re.M)

# What each parametrized run survived, for the terminal summary (conftest.py).
SURVIVED: dict[str, Counter] = {}


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    data = tmp_path_factory.mktemp("kill-corpus")
    truth = corpus.generate(data, TURNS, seed=11, workers=1, malformed_rate=0.01)
    counts = truth["counts"]
    for case in ("claude_sidechain_replays", "claude_resumed_copied_assistant_lines"):
        assert counts.get(case, 0) > 0, case
    return data, truth


class Scans:
    """`clawtrace scan` and friends as subprocesses on one home and one tree."""

    def __init__(self, tree: Path, home: Path, native: bool, user_home: Path) -> None:
        self.tree, self.home = tree, home
        self.env = dict(
            os.environ,
            CLAWTRACE_HOME=str(home),
            HOME=str(user_home),
            CLAWTRACE_NATIVE="1" if native else "0",
            TZ="UTC",
        )
        self.dirs = [
            "--claude-dir",
            str(tree / "claude"),
            "--openclaw-dir",
            str(tree / "openclaw"),
        ]
        self.pgids: set[int] = set()

    def command(self, *args: str, home: Path | None = None) -> subprocess.CompletedProcess:
        env = dict(self.env, CLAWTRACE_HOME=str(home or self.home))
        try:
            return subprocess.run(
                [sys.executable, "-m", "clawtrace", *args],
                capture_output=True,
                env=env,
                timeout=DEADLINE,
                check=False,
            )
        except subprocess.TimeoutExpired:
            pytest.fail(f"`clawtrace {' '.join(args)}` hung for {DEADLINE} s")

    def scan(self, home: Path | None = None) -> tuple[int, str]:
        """An uninterrupted scan: (the count its summary gives, its output)."""
        done = self.command("scan", *self.dirs, home=home)
        text = done.stdout.decode() + done.stderr.decode()
        assert done.returncode == 0, text
        assert "Traceback" not in text, text
        return summary_count(text), text

    def start(self) -> subprocess.Popen:
        proc = subprocess.Popen(
            [sys.executable, "-m", "clawtrace", "scan", *self.dirs],
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,  # its own process group: its workers are forked into it
        )
        self.pgids.add(proc.pid)
        return proc

    def measure(self, scratch: Path) -> float:
        """Seconds an uninterrupted scan of what is there now takes (process start to exit),
        on a copy of the store."""
        if scratch.exists():
            shutil.rmtree(scratch)
        if self.home.exists():
            shutil.copytree(self.home, scratch)
        started = time.perf_counter()
        self.scan(home=scratch)
        took = time.perf_counter() - started
        shutil.rmtree(scratch)
        return took

    def reap(self) -> list[int]:
        """Wait for every process group started to be gone (the workers of a scan whose main
        process was killed finish their batch, then see their pipe close); returns the groups
        still alive after the deadline, killed then."""
        lingering = []
        deadline = time.monotonic() + DEADLINE
        for pgid in sorted(self.pgids):
            while time.monotonic() < deadline and _group_alive(pgid):
                time.sleep(0.05)
            if _group_alive(pgid):
                lingering.append(pgid)
                os.killpg(pgid, signal.SIGKILL)
        self.pgids.clear()
        return lingering


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def summary_count(text: str) -> int:
    found = STORE_HOLDS.findall(text)
    assert len(found) == 1, text
    return int(found[0].replace(",", ""))


def store_turns(home: Path) -> int:
    with sqlite3.connect(f"file:{home / 'clawtrace.db'}?mode=ro", uri=True) as conn:
        return conn.execute("SELECT COUNT(*) FROM turns").fetchone()[0]


def kill_schedule(rng: random.Random, rounds: int) -> list[list[tuple[str, float]]]:
    """Per round, the (kind, moment as a share of the window) of its kills: each kind's
    moments stratified over (0, WINDOW] so that start-up, the middle and the end of a scan all
    get theirs, shuffled over the rounds."""
    plan: list[tuple[str, float]] = []
    for kind in KINDS:
        n = KILLS_PER_KIND
        plan += [(kind, WINDOW * (i + rng.random()) / n) for i in range(n)]
    rng.shuffle(plan)
    per_round: list[list[tuple[str, float]]] = [[] for _ in range(rounds)]
    for i, kill in enumerate(plan):
        per_round[i % rounds].append(kill)
    return per_round


def stop(proc: subprocess.Popen, kind: str) -> tuple[str, str]:
    """Stop `proc` the way `kind` says; returns what happened ('killed', or 'finished' when
    it had ended before the signal could reach it) and what it printed."""
    if proc.poll() is None:
        try:
            if kind == KINDS[0]:
                os.kill(proc.pid, signal.SIGKILL)
            elif kind == KINDS[1]:
                os.killpg(proc.pid, signal.SIGKILL)
            else:
                os.killpg(proc.pid, signal.SIGINT)
        except ProcessLookupError:
            pass
    try:
        out, err = proc.communicate(timeout=DEADLINE)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        pytest.fail(f"a scan sent {kind} did not end within {DEADLINE} s")
    text = out.decode(errors="replace") + err.decode(errors="replace")
    code = proc.returncode
    if code == 0:
        return "finished", text
    if kind == KINDS[2] and STORE_HOLDS.search(text):
        # The scan had done its work: Ctrl-C came while the interpreter was exiting.
        assert code in (1, -signal.SIGINT) and "Traceback" not in text, (code, text)
        return "finished", text
    if kind == KINDS[2]:
        # Ctrl-C: "Aborted!" once `clawtrace` runs, status 1 (or now and then the signal's
        # own status: CPython exits so when a KeyboardInterrupt went through code run by an
        # extension, even though we caught it). Before that, while the interpreter itself
        # starts (site, runpy), Python's own KeyboardInterrupt, and nothing of ours.
        assert code in (1, -signal.SIGINT), (code, text)
        if "Aborted!" in text:
            assert "Traceback" not in text, text
        else:
            assert not text.strip() or text.rstrip().endswith("KeyboardInterrupt"), text
            # Only the interpreter loading our __main__ module, before a line of ours ran.
            frame = rf'File "{re.escape(PACKAGE_DIR)}/([^"]+)", line \d+, in (\S+)'
            assert set(re.findall(frame, text)) <= {("__main__.py", "<module>")}, text
    else:
        assert code == -signal.SIGKILL, (code, text)
        assert "Traceback" not in text, text
    return "killed", text


def cost_reports(scans: Scans, home: Path) -> dict[str, dict]:
    """What `clawtrace cost-report --json` says of the whole store, grouped several ways, in
    each cost mode."""
    reports = {}
    for by in ("model", "day", "source"):
        for mode in ("auto", "calculate", "display"):
            done = scans.command(
                "cost-report",
                "--no-scan",
                "--json",
                "--range",
                "all",
                "--timezone",
                "UTC",
                "--by",
                by,
                "--mode",
                mode,
                home=home,
            )
            assert done.returncode == 0, done.stderr.decode()
            reports[f"{by}/{mode}"] = orjson.loads(done.stdout)
    return reports


FILE_COLUMNS = "path, source, size, offset, lines, malformed, turn_lines, missing_since IS NULL"


def store_facts(home: Path) -> dict[str, object]:
    """What a store holds, independent of the order it was filled in: the files on disk
    (offsets and counts), and the rollups next to a rebuild of them from the turns."""
    from clawtrace import store

    # (A copy: the rebuild below writes.)
    copy = home.parent / f"{home.name}-facts"
    if copy.exists():
        shutil.rmtree(copy)
    shutil.copytree(home, copy)
    conn = store.connect(copy / "clawtrace.db")
    try:
        files = sorted(
            row[:-1]
            for row in conn.execute(f"SELECT {FILE_COLUMNS} FROM files")  # noqa: S608
            if row[-1]
        )
        dims = "bucket, source, agent, project, session_id, is_sidechain, model, provider"
        metrics = (
            "turns, input_tokens, output_tokens, cache_read_tokens, cache_write_5m_tokens, "
            "cache_write_1h_tokens, web_search_requests, auto_pico, calc_pico, display_pico"
        )
        sums = ", ".join(f"SUM({m.strip()})" for m in metrics.split(","))
        query = f"SELECT {dims}, {sums} FROM rollup_wide GROUP BY {dims} ORDER BY {dims}"  # noqa: S608
        # (A row whose turns all went, to a replay or a longer piece of one response, may
        # stay behind with nothing in it: nothing to compare.)
        rollups = [r for r in conn.execute(query) if any(r[8:])]
        with conn:
            store.rollups_refresh(conn, full=True)
        rebuilt = [r for r in conn.execute(query) if any(r[8:])]
        turns = conn.execute("SELECT COUNT(*) FROM turns").fetchone()[0]
        replays = conn.execute(
            "SELECT COUNT(*) FROM turns_wide AS s WHERE s.is_sidechain AND EXISTS (SELECT 1 "
            "FROM turns_wide AS o WHERE o.msg_hash = s.msg_hash AND o.id <> s.id AND "
            "(NOT o.is_sidechain OR o.id < s.id))"
        ).fetchone()[0]
    finally:
        conn.close()
        shutil.rmtree(copy)
    assert rollups == rebuilt, "the rollups kept through the kills differ from a rebuild"
    return {"files": files, "rollups": rollups, "turns": turns, "replays_billed": replays}


def relative_files(facts: dict, tree: Path) -> list[tuple]:
    return [(Path(row[0]).relative_to(tree).as_posix(), *row[1:]) for row in facts["files"]]


def pick(row: dict) -> tuple[int, ...]:
    return tuple(row[k] for k in KEYS)


@pytest.mark.parametrize("native", [True, False], ids=["native", "python"])
def test_scans_killed_at_random_moments_lose_nothing_and_count_nothing_twice(
    generated, tmp_path, native
):
    if native:
        try:
            from clawtrace import _ingest, _native
        except ImportError:
            _ingest = _native = None
        needs_native(_native and _ingest)
    data, truth = generated
    rng = random.Random(f"{SEED}-{native}")
    tree = GrowingTree(data, tmp_path / "tree", ROUNDS, rng)
    assert tree.renames() > 0  # (archives that grew under their live name)
    scans = Scans(tree.target, tmp_path / "home", native, tmp_path / "user-home")
    reference = tmp_path / "reference-home"
    schedule = kill_schedule(rng, ROUNDS)
    outcomes: Counter = Counter()
    mode = "native" if native else "python"
    SURVIVED[mode] = outcomes
    try:
        for round_kills in schedule:
            tree.advance()
            window = scans.measure(tmp_path / "measure-home")
            pending = list(round_kills)
            # A kill that comes after the scan has ended is no kill: it is tried again (the
            # store has moved on, so the window is measured again), up to twice the plan.
            tries = 2 * len(pending)
            while pending and tries:
                tries -= 1
                kind, share = pending.pop(0)
                proc = scans.start()
                time.sleep(share * window)
                what, text = stop(proc, kind)
                outcomes[(kind, what)] += 1
                if what == "finished":
                    assert summary_count(text) == store_turns(scans.home), text
                    pending.append((kind, share * rng.random()))
                    window = scans.measure(tmp_path / "measure-home")
            assert not pending, f"scans ended before these kills could reach them: {pending}"
            # The scan that completes the round, and one from scratch to hold it to.
            count, _ = scans.scan()
            assert count == store_turns(scans.home)
            if reference.exists():
                shutil.rmtree(reference)
            ref_count, _ = scans.scan(home=reference)
            assert count == ref_count
            got, want = store_facts(scans.home), store_facts(reference)
            assert got["replays_billed"] == 0
            assert relative_files(got, tree.target) == relative_files(want, tree.target)
            assert got["rollups"] == want["rollups"]
        assert tree.complete
    finally:
        lingering = scans.reap()
    assert lingering == [], "scan workers still ran long after their scan was killed"

    for kind in KINDS:
        assert outcomes[(kind, "killed")] >= KILLS_PER_KIND, outcomes

    # The generator's truth, exactly.
    count, _ = scans.scan()
    assert count == truth["totals"]["turns"] == store_turns(scans.home)
    reports = cost_reports(scans, scans.home)
    # Prices: what the report computes equals what it computes on the from-scratch store.
    assert reports == cost_reports(scans, reference)
    totals = reports["model/auto"]["totals"]
    assert pick(totals) == pick(truth["totals"])
    assert {r["model"]: pick(r) for r in reports["model/auto"]["rows"]} == {
        r["model"]: pick(r) for r in truth["by_model"]
    }
    assert {r["day"]: pick(r) for r in reports["day/auto"]["rows"]} == {
        r["day"]: pick(r) for r in truth["by_day"]
    }
    assert {r["source"]: pick(r) for r in reports["source/auto"]["rows"]} == {
        r["source"]: pick(r) for r in truth["by_source"]
    }
    # The cost the logs carry, summed to the picodollar (the report rounds it to 8 places).
    facts = store_facts(scans.home)
    display_pico = sum(row[-1] for row in facts["rollups"])
    logged_nano = round(float(truth["totals"]["logged_cost_usd"]) * 1e9)
    assert display_pico == logged_nano * 1000
    assert reports["model/display"]["totals"]["cost_usd"] == pytest.approx(
        logged_nano / 1e9, abs=1e-8
    )
    # Per UTC day and model, and per cache-write TTL and web searches, from the store itself.
    by_day_model: dict[tuple[str, str], list[int]] = {}
    cw_web: Counter = Counter()
    for row in facts["rollups"]:
        bucket, model = row[0], row[6]
        n, inp, out, cr, cw5, cw1h, web = row[8:15]
        day = time.strftime("%Y-%m-%d", time.gmtime(bucket * 900))
        acc = by_day_model.setdefault((day, model), [0] * 5)
        for i, v in enumerate((n, inp, out, cr, cw5 + cw1h)):
            acc[i] += v
        cw_web.update(
            {
                "cache_write_5m_tokens": cw5,
                "cache_write_1h_tokens": cw1h,
                "web_search_requests": web,
            }
        )
    assert {k: tuple(v) for k, v in by_day_model.items()} == {
        (r["day"], r["model"]): pick(r) for r in truth["by_day_model"]
    }
    assert dict(cw_web) == {k: truth["totals"][k] for k in cw_web}
    # Every file on disk: read to its end, its lines and malformed lines counted once.
    files = {row[0]: row for row in relative_files(facts, tree.target)}
    assert set(files) == {rel for rel in truth["files"] if not rel.endswith(".bak")}
    for rel, want in truth["files"].items():
        if rel.endswith(".bak"):
            continue
        _path, _source, size, offset, lines, malformed, _turn_lines = files[rel]
        assert (offset, lines, malformed) == (size, want["lines"], sum(want["malformed"].values()))

    doctor = scans.command("doctor", "--json", *scans.dirs)
    assert doctor.returncode == 0, doctor.stderr.decode()
    report = orjson.loads(doctor.stdout)
    assert report["store"]["damaged"] is False
    assert report["store"]["problems"] == []
    assert report["store"]["turns"] == truth["totals"]["turns"]
    for source in ("claude-code", "openclaw"):
        assert report["sources"][source]["unreadable"] == []
    plain = scans.command("doctor", "--no-scan")
    assert plain.returncode == 0 and b"Traceback" not in plain.stdout + plain.stderr
