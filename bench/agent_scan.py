#!/usr/bin/env python3
"""Benchmark the agent's scan and reports against ccusage and a floor, on generated corpora.

    python bench/agent_scan.py --turns 100000 [--turns 1000000]

For each size, generates (or reuses) `bench/corpora/t<turns>-s<seed>-v<generator version>/`
with bench/corpus.py, then runs, each as its own child process (wall time; peak RSS from
os.wait4 and the summed RSS of the child's process tree sampled from /proc):

- floor: one process reads every transcript and `orjson.loads` every line;
- stat floor: `find` stats every directory and file of the tree (what any rescan that looks
  at each file's size and time must do at least), the reference for the warm rescan;
- clawtrace scan, cold (fresh CLAWTRACE_HOME), then warm (nothing changed);
- every clawtrace report (cost-report by day, model, project, session; status, blocks,
  sessions --top, tools, cache, forecast; all --json) from the store;
- ccusage@20.0.24 `daily --json --offline` over all agents (Claude Code + OpenClaw);
- the cold scan and ccusage again, back to back in `--pairs` pairs: the ratio's median over
  pairs that each ran under the same machine conditions (this machine's speed drifts);
- not ClawMetry: it cannot total a data directory offline (bench/README.md says why).

Checks that our totals and ccusage's equal the corpus's truth.json, prints a markdown table and
writes it with the raw figures to bench/out/. Every child runs with HOME pointed at an empty
directory so nothing of the machine's own logs leaks in. Page cache: every file of the corpus is
read (untimed) right before each floor, cold-scan and ccusage run, so every step reads from
memory (the same condition for all).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
sys.path.insert(0, str(BENCH))

import corpus  # noqa: E402  (bench/ is not a package)

CCUSAGE_VERSION = "20.0.24"
FLOOR_CODE = r"""
import os, sys, orjson
root = sys.argv[1]
lines = bad = size = 0
for sub in ("claude", "openclaw"):
    for dirpath, _dirs, files in os.walk(os.path.join(root, sub)):
        for name in files:
            if name == "sessions.json" or ".jsonl" not in name or name.endswith(".bak"):
                continue
            with open(os.path.join(dirpath, name), "rb") as fh:
                for line in fh:
                    size += len(line)
                    lines += 1
                    try:
                        orjson.loads(line)
                    except orjson.JSONDecodeError:
                        bad += 1
print(orjson.dumps({"lines": lines, "bad": bad, "bytes": size}).decode())
"""


# ----------------------------------------------------------------------------- measuring


def _tree_pids(root: int) -> list[int]:
    """The process and its descendants, from /proc/<pid>/task/<tid>/children."""
    pids, todo = [], [root]
    while todo:
        pid = todo.pop()
        pids.append(pid)
        try:
            for tid in os.listdir(f"/proc/{pid}/task"):
                with open(f"/proc/{pid}/task/{tid}/children") as fh:
                    todo.extend(int(c) for c in fh.read().split())
        except OSError:
            continue
    return pids


def _tree_memory(root: int) -> tuple[int, int, int]:
    """(summed RSS, summed PSS, largest single high-water RSS) of a process tree, in bytes.

    RSS counts a page shared by several processes (a forked worker's copy-on-write pages) in
    each of them; PSS divides it among them, so the tree's PSS is what the machine really
    pays. The single-process peak is VmHWM: `wait4`'s ru_maxrss would start from the parent's
    RSS at fork (Linux keeps the pre-exec high-water mark), which for this script is tens of MB.
    """
    rss = pss = hwm = 0
    for pid in _tree_pids(root):
        try:
            with open(f"/proc/{pid}/status") as fh:
                for line in fh:
                    if line.startswith("VmHWM:"):
                        hwm = max(hwm, int(line.split()[1]) * 1024)
                    elif line.startswith("VmRSS:"):
                        rss += int(line.split()[1]) * 1024
            with open(f"/proc/{pid}/smaps_rollup") as fh:
                for line in fh:
                    if line.startswith("Pss:"):
                        pss += int(line.split()[1]) * 1024
                        break
        except (OSError, IndexError, ValueError):
            continue
    return rss, pss, hwm


def warm_cache(root: Path) -> None:
    """Read every file of the corpus (untimed) right before a heavy step: this machine's
    memory manager reclaims idle page cache within minutes, and a step that finds part of the
    corpus evicted reads it from disk (up to 2x slower, whichever tool it is)."""
    buf = bytearray(1 << 20)
    for dirpath, _dirs, files in os.walk(root):
        for name in files:
            try:
                with open(os.path.join(dirpath, name), "rb", buffering=0) as fh:
                    while fh.readinto(buf):
                        pass
            except OSError:
                continue


def _compile_bytecode() -> None:
    """Byte-compile the clawtrace package, as pip does when it installs it: otherwise the first
    timed run of an editable checkout compiles its sources."""
    import compileall
    import importlib.util

    spec = importlib.util.find_spec("clawtrace")
    if spec and spec.submodule_search_locations:
        for where in spec.submodule_search_locations:
            compileall.compile_dir(where, quiet=1)


def run_measured(
    argv: list[str],
    env: dict[str, str],
    cwd: Path | None = None,
    timeout: float = 1800,
    sample: bool = True,
) -> dict:
    """Run one child; wall time, peak RSS of the largest single process of its tree (wait4
    rusage, not the cumulative RUSAGE_CHILDREN), and with `sample` the peak of the whole tree's
    summed RSS and PSS (sampled every ~10 ms from /proc: parser worker processes count too).

    Sampling reads every process's smaps_rollup a hundred times a second: on two cores that
    costs the measured program some of its time, so timed runs are made without it."""
    t0 = time.perf_counter()
    tree_peak = pss_peak = hwm_peak = 0
    next_sample = t0
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        proc = subprocess.Popen(argv, env=env, cwd=cwd, stdout=out, stderr=err)
        deadline = t0 + timeout
        if not sample:
            killer = threading.Timer(timeout, proc.kill)
            killer.start()
            try:
                pid, status, usage = os.wait4(proc.pid, 0)
            finally:
                killer.cancel()
        while sample:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            now = time.perf_counter()
            if now >= next_sample:
                rss, pss, hwm = _tree_memory(proc.pid)
                tree_peak, pss_peak, hwm_peak = (
                    max(tree_peak, rss),
                    max(pss_peak, pss),
                    max(hwm_peak, hwm),
                )
                next_sample = now + 0.01
            if now > deadline:
                proc.kill()
                pid, status, usage = os.wait4(proc.pid, 0)
                break
            time.sleep(0.002)
        wall = time.perf_counter() - t0
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read(), err.read()
    return {
        "argv": argv,
        "wall_s": wall,
        # A child gone before the first sample (a few ms): wait4's figure, an upper bound.
        "rss_mb": hwm_peak / 2**20 if hwm_peak else usage.ru_maxrss / 1024,
        "tree_rss_mb": tree_peak / 2**20 if tree_peak else usage.ru_maxrss / 1024,
        "tree_pss_mb": pss_peak / 2**20 if pss_peak else usage.ru_maxrss / 1024,
        "rc": proc.returncode,
        "stdout": stdout,
        "stderr": stderr.decode(errors="replace")[-2000:],
    }


QUIET_LOAD = 1.0  # 1-minute load average under which the machine counts as quiet
QUIET_WAIT_S = 0.0  # set from --quiet-wait


def wait_quiet() -> float:
    """Wait (up to --quiet-wait seconds) for other work on the machine to calm down: on a
    shared 2-core box a busy neighbour halves any figure. Returns the load seen at the start."""
    load = os.getloadavg()[0]
    deadline = time.monotonic() + QUIET_WAIT_S
    while load > QUIET_LOAD and time.monotonic() < deadline:
        time.sleep(2)
        load = os.getloadavg()[0]
    return load


def median_run(argv: list[str], env: dict[str, str], repeat: int, prepare=None) -> dict:
    """The median wall time of `repeat` timed runs, and the memory of one more run sampled
    from /proc (a sampled run is a few percent slower, so it is not timed)."""
    runs = []
    loads = []
    for _ in range(repeat):
        if prepare:
            prepare()
        loads.append(wait_quiet())
        runs.append(run_measured(argv, env, sample=False))
        if runs[-1]["rc"] != 0:
            break
    if runs[-1]["rc"] == 0:
        if prepare:
            prepare()
        memory = run_measured(argv, env, sample=True)
    else:
        memory = runs[-1]
    best = sorted(runs, key=lambda r: r["wall_s"])[len(runs) // 2]
    best = dict(best)
    best["runs_wall_s"] = [round(r["wall_s"], 4) for r in runs]
    best["sampled_wall_s"] = round(memory["wall_s"], 4)
    # (Not the timed runs' wait4 figure: Linux starts it from this script's RSS at fork.)
    best["rss_mb"] = memory["rss_mb"]
    best["tree_rss_mb"] = memory["tree_rss_mb"]
    best["tree_pss_mb"] = memory["tree_pss_mb"]
    best["load"] = round(max(loads), 2)
    return best


# ----------------------------------------------------------------------------- peers


def ccusage_bin() -> Path | None:
    env = os.environ.get("CCUSAGE_BIN")
    if env and Path(env).exists():
        return Path(env)
    local = BENCH / "peers" / "node_modules" / ".bin" / "ccusage"
    return local if local.exists() else None


def clawtrace_bin() -> list[str]:
    exe = Path(sys.executable).parent / "clawtrace"
    if exe.exists():
        return [str(exe)]
    found = shutil.which("clawtrace")
    if found:
        return [found]
    return [sys.executable, "-m", "clawtrace"]


# ----------------------------------------------------------------------------- truth checks


def _key_totals(row: dict) -> tuple[int, ...]:
    return (
        row["turns"],
        row["input_tokens"],
        row["output_tokens"],
        row["cache_read_tokens"],
        row["cache_write_tokens"],
    )


def check_ours(report: dict, truth: dict) -> str:
    """Our `cost-report --by model --json` against truth's per-model totals."""
    want = {r["model"]: _key_totals(r) for r in truth["by_model"]}
    got: dict[str, tuple[int, ...]] = {}
    for row in report.get("rows", []):
        got[row["model"]] = _key_totals(row)
    if got == want:
        return "exact"
    diffs = [m for m in sorted(set(want) | set(got)) if want.get(m) != got.get(m)]
    m = diffs[0]
    return f"DIFFERS ({len(diffs)} models, e.g. {m}: ours {got.get(m)} truth {want.get(m)})"


def check_ours_by_day(report: dict, truth: dict) -> str:
    """Our `cost-report --by day --timezone UTC --json` against truth's UTC days."""
    want = {r["day"]: _key_totals(r) for r in truth["by_day"]}
    got = {row["day"]: _key_totals(row) for row in report.get("rows", [])}
    if got == want:
        return "exact"
    diffs = [d for d in sorted(set(want) | set(got)) if want.get(d) != got.get(d)]
    d = diffs[0]
    return f"DIFFERS by day ({len(diffs)} days, e.g. {d}: ours {got.get(d)} truth {want.get(d)})"


def check_ccusage(data: dict, truth: dict) -> str:
    """ccusage's all-agents daily JSON against truth per (source, model), tokens only."""
    want: dict[tuple[str, str], tuple[int, ...]] = {}
    for r in truth["by_source_model"]:
        src = "claude" if r["source"] == "claude-code" else "openclaw"
        key = (src, r["model"])
        prev = want.get(key, (0, 0, 0, 0))
        cur = (
            r["input_tokens"],
            r["output_tokens"],
            r["cache_read_tokens"],
            r["cache_write_tokens"],
        )
        want[key] = tuple(a + b for a, b in zip(prev, cur, strict=True))
    got: dict[tuple[str, str], tuple[int, ...]] = {}
    for day in data.get("daily", []):
        for agent in day.get("agents", []):
            for m in agent.get("modelBreakdowns", []):
                name = m["modelName"].removeprefix("[openclaw] ")
                key = (agent["agent"], name)
                prev = got.get(key, (0, 0, 0, 0))
                cur = (
                    m["inputTokens"],
                    m["outputTokens"],
                    m["cacheReadTokens"],
                    m["cacheCreationTokens"],
                )
                got[key] = tuple(a + b for a, b in zip(prev, cur, strict=True))
    if got == want:
        return "exact"
    diffs = [k for k in sorted(set(want) | set(got)) if want.get(k) != got.get(k)]
    return f"DIFFERS ({len(diffs)} keys, e.g. {diffs[0]})"


# ----------------------------------------------------------------------------- one size


def corpus_for(turns: int, seed: int, root: Path) -> tuple[Path, dict, float | None]:
    # The generator's version is in the name: a corpus someone else is reading is never
    # regenerated under their feet.
    path = root / f"t{turns}-s{seed}-v{corpus.GENERATOR_VERSION}"
    truth_file = path / "truth.json"
    if truth_file.exists():
        truth = json.loads(truth_file.read_bytes())
        g = truth.get("generator", {})
        if g.get("version") == corpus.GENERATOR_VERSION and g.get("turns") == turns:
            return path, truth, None
        shutil.rmtree(path)
    t0 = time.perf_counter()
    truth = corpus.generate(path, turns, seed=seed)
    return path, truth, time.perf_counter() - t0


def bench_size(turns: int, args: argparse.Namespace) -> dict:
    corpora = Path(args.corpora)
    data, truth, gen_s = corpus_for(turns, args.seed, corpora)
    size = sum(p.stat().st_size for p in data.rglob("*") if p.is_file())
    n_files = sum(1 for _ in data.rglob("*.jsonl*"))
    print(
        f"\n## {turns:,} turns: {data} ({size / 1e9:.2f} GB, {n_files} files"
        + (f", generated in {gen_s:.1f} s" if gen_s else ", reused")
        + ")",
        file=sys.stderr,
    )
    work = Path(tempfile.mkdtemp(prefix="clawtrace-bench-"))
    empty_home = work / "home"
    empty_home.mkdir()
    ct_home = work / "clawtrace"
    base_env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(empty_home),
        "TZ": "UTC",
        "LANG": "C.UTF-8",
        "NO_COLOR": "1",
    }
    ct_env = {
        **base_env,
        "CLAWTRACE_HOME": str(ct_home),
        "CLAUDE_CONFIG_DIR": str(data / "claude"),
        "OPENCLAW_STATE_DIR": str(data / "openclaw"),
    }
    ct = clawtrace_bin()
    _compile_bytecode()
    steps: list[dict] = []

    def record(name: str, res: dict, note: str = "") -> dict:
        res["name"] = name
        res["note"] = note
        if res["rc"] != 0:
            tail = " ".join(res["stderr"][-300:].split()).replace("|", "/")
            res["note"] = (note + " " if note else "") + f"FAILED rc={res['rc']}: {tail}"
        steps.append(res)
        print(
            f"  {name:<34} {res['wall_s']:8.3f} s  {res['rss_mb']:8.1f} MB"
            f" (tree PSS {res.get('tree_pss_mb', 0):.0f} MB, RSS {res['tree_rss_mb']:.0f} MB)"
            f"  load {res.get('load', 0):.1f}  {res['note']}",
            file=sys.stderr,
        )
        return res

    steps_wanted = set(args.steps.split(","))
    # Floor first: it also brings every file into the page cache for all later steps.
    floor_argv = [sys.executable, "-c", FLOOR_CODE, str(data)]
    run_measured(floor_argv, base_env)
    if "floor" in steps_wanted:
        record(
            "floor (read + orjson.loads)",
            median_run(floor_argv, base_env, args.repeat_heavy, prepare=lambda: warm_cache(data)),
        )

    def fresh_home() -> None:
        shutil.rmtree(ct_home, ignore_errors=True)
        warm_cache(data)

    if steps_wanted & {"cold", "warm", "reports"}:
        cold_run = median_run([*ct, "scan"], ct_env, args.repeat_heavy, prepare=fresh_home)
        cold = record("clawtrace scan (cold)", cold_run)
        # Flush the store's dirty pages now, so the kernel's writeback of a cold scan's
        # hundreds of MB does not land in the warm-scan and report timings that follow.
        os.sync()
        if cold["rc"] == 0:
            # A benchmark that measures wrong numbers is worthless: check the store first.
            check = run_measured(
                [*ct, "cost-report", "--by", "model", "--range", "all", "--no-scan", "--json"],
                ct_env,
            )
            day_cmd = ["cost-report", "--by", "day", "--range", "all", "--timezone", "UTC"]
            check_day = run_measured([*ct, *day_cmd, "--no-scan", "--json"], ct_env)
            try:
                cold["truth"] = check_ours(json.loads(check["stdout"]), truth)
                if cold["truth"] == "exact":
                    cold["truth"] = check_ours_by_day(json.loads(check_day["stdout"]), truth)
            except (ValueError, KeyError) as exc:
                cold["truth"] = f"unreadable cost-report output: {exc} {check['stderr'][-200:]}"
            cold["note"] = (cold.get("note") or "") + f"totals vs truth: {cold['truth']}"
            print(f"  {'':<34} {cold['note']}", file=sys.stderr)
    else:
        cold = {"rc": 1}
    if cold["rc"] == 0 and "warm" in steps_wanted:
        find = shutil.which("find")
        if find:
            stat_argv = [find, str(data), "-printf", "%s %T@ %i\n"]
            record("stat floor (find: every dir and file)", median_run(stat_argv, base_env, 5))
        warm = record(
            "clawtrace scan (warm, no change)",
            median_run([*ct, "scan", "--json"], ct_env, args.repeat),
        )
        if warm["rc"] == 0:
            done = json.loads(warm["stdout"])
            warm["note"] = (
                f"{done['files_unchanged']:,} files unchanged, {done['bytes_read']} bytes read"
            )
    if cold["rc"] == 0 and "reports" in steps_wanted:
        store_only = ["--no-scan", "--json", "--timezone", "UTC"]
        reports = [
            *(
                (
                    f"cost-report --by {by}",
                    ["cost-report", "--by", by, "--range", "all", *store_only],
                )
                for by in ("day", "model", "project", "session")
            ),
            ("cost-report --range 7d", ["cost-report", "--range", "7d", *store_only]),
            ("status", ["status", *store_only]),
            ("blocks", ["blocks", *store_only]),
            ("sessions --top 10", ["sessions", "--top", "10", *store_only]),
            ("tools", ["tools", *store_only]),
            ("cache", ["cache", *store_only]),
            ("forecast", ["forecast", *store_only]),
            # What a user runs: the report brings the store up to date first (a warm scan).
            (
                "cost-report --by day, scan first",
                ["cost-report", "--by", "day", "--range", "all", "--json", "--timezone", "UTC"],
            ),
        ]
        for label, cmd in reports:
            scan_first = "scan first" in label
            name = f"clawtrace {label}" + ("" if scan_first else " (store only)")
            argv = [*ct, *cmd, *([] if scan_first or "--no-scan" in cmd else store_only)]
            record(name, median_run(argv, ct_env, args.repeat))

    cc = ccusage_bin()
    cc_env = {
        **base_env,
        "CLAUDE_CONFIG_DIR": str(data / "claude"),
        "OPENCLAW_DIR": str(data / "openclaw"),
    }
    cc_argv = [str(cc), "daily", "--json", "--offline", "--timezone", "UTC", "--by-agent"]
    if cc and "ccusage" in steps_wanted and not args.skip_ccusage:
        res = record(
            f"ccusage {CCUSAGE_VERSION} daily (all agents)",
            median_run(cc_argv, cc_env, args.repeat_heavy, prepare=lambda: warm_cache(data)),
        )
        if res["rc"] == 0:
            res["truth"] = check_ccusage(json.loads(res["stdout"]), truth)
            res["note"] = f"totals vs truth: {res['truth']}"
            print(f"  {'':<34} {res['note']}", file=sys.stderr)
    elif not cc:
        print("  ccusage not installed: run bench/peers.sh", file=sys.stderr)

    pairs: dict | None = None
    if cc and args.pairs and "cold" in steps_wanted and not args.skip_ccusage:
        # The machine's speed drifts (seen here: the same loop 1.5-2.3 s from one minute to the
        # next), and the steps above run one after the other: the cold-scan ratio is also
        # taken from pairs run back to back, each pair under the same conditions.
        walls: list[list[float]] = []
        for _ in range(args.pairs):
            fresh_home()
            ours = run_measured([*ct, "scan"], ct_env, sample=False)
            warm_cache(data)
            theirs = run_measured(cc_argv, cc_env, sample=False)
            if ours["rc"] != 0 or theirs["rc"] != 0:
                break
            walls.append([round(ours["wall_s"], 4), round(theirs["wall_s"], 4)])
        if walls:
            ratios = sorted(t / o for o, t in walls)
            pairs = {
                "walls": walls,
                "ratio_median": round(ratios[len(ratios) // 2], 3),
                "ratio_min": round(ratios[0], 3),
                "ratio_max": round(ratios[-1], 3),
            }
            print(
                f"  cold scan vs ccusage, {len(walls)} pairs back to back: "
                f"{pairs['ratio_median']:.2f}x (pairs {pairs['ratio_min']:.2f}-"
                f"{pairs['ratio_max']:.2f}x)",
                file=sys.stderr,
            )

    shutil.rmtree(work, ignore_errors=True)
    for s in steps:
        s.pop("stdout", None)
    return {
        "turns": turns,
        "truth_turns": truth["totals"]["turns"],
        "corpus": str(data),
        "bytes": size,
        "files": n_files,
        "steps": steps,
        "pairs": pairs,
    }


# ----------------------------------------------------------------------------- table


def table(result: dict) -> str:
    steps = result["steps"]
    by = {s["name"]: s for s in steps}
    floor = next((s for s in steps if s["name"].startswith("floor")), None)
    ccu = next((s for s in steps if s["name"].startswith("ccusage")), None)

    def ratio(s: dict, ref: dict | None) -> str:
        if not ref or ref["rc"] != 0 or s["rc"] != 0 or not s["wall_s"]:
            return "n/a"
        return f"{ref['wall_s'] / s['wall_s']:.2f}x" if s is not ref else "1x"

    lines = [
        f"### {result['turns']:,} turns"
        f" ({result['bytes'] / 1e9:.2f} GB, {result['files']:,} files)",
        "",
        "| step | wall s | peak RSS MB | tree PSS MB | tree RSS MB | speed vs ccusage"
        " | speed vs floor | load | notes |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    for name, s in by.items():
        runs = s.get("runs_wall_s", [])
        note = s.get("note", "")
        if len(runs) > 1:
            note = (note + "; " if note else "") + f"median of {len(runs)}"
        lines.append(
            f"| {name} | {s['wall_s']:.3f} | {s['rss_mb']:.0f} | {s.get('tree_pss_mb', 0):.0f}"
            f" | {s['tree_rss_mb']:.0f} |"
            f" {ratio(s, ccu)} | "
            f"{ratio(s, floor)} | {s.get('load', 0):.1f} | {note} |"
        )
    pairs = result.get("pairs")
    if pairs:
        lines.append("")
        lines.append(
            f"Cold scan vs ccusage in {len(pairs['walls'])} pairs run back to back (each pair "
            f"under the same machine conditions): median **{pairs['ratio_median']:.2f}x**, "
            f"pairs {pairs['ratio_min']:.2f}-{pairs['ratio_max']:.2f}x."
        )
    lines.append("")
    lines.append(
        "Speed ratios are reference time / step time: above 1x the step is faster than ccusage "
        "(or the floor). Peak RSS: the high-water RSS of the largest single process (VmHWM); "
        "tree PSS / RSS: the peak of the summed proportional / resident set size of the process "
        "and its children (parser workers), sampled every 10 ms in one more run of the step, "
        "not timed (sampling costs the step a few percent of two cores). Wall: the median of "
        "the timed runs. PSS counts a page the workers "
        "share with the process that forked them once, RSS once per process. "
        "Load: the machine's 1-minute load average just before the step (2 "
        "cores: above ~1 something else was running and the figure is pessimistic)."
    )
    return "\n".join(lines)


def machine() -> str:
    cpu = "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{os.cpu_count()} cores ({cpu}), Python {sys.version.split()[0]}"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--turns", type=int, action="append", help="corpus size(s) in billed turns")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--corpora", default=str(BENCH / "corpora"))
    ap.add_argument("--out", default=str(BENCH / "out"))
    ap.add_argument("--repeat", type=int, default=5, help="runs of the quick steps (median)")
    ap.add_argument("--repeat-heavy", type=int, default=1, help="runs of floor/cold scan/ccusage")
    ap.add_argument("--skip-ccusage", action="store_true")
    ap.add_argument(
        "--pairs",
        type=int,
        default=5,
        help="cold scan and ccusage run back to back this many times (the ratio's median)",
    )
    ap.add_argument(
        "--steps",
        default="floor,cold,warm,reports,ccusage",
        help="comma-separated subset of floor,cold,warm,reports,ccusage (warm and reports need "
        "a cold scan, which is then measured too; its totals are checked against truth.json)",
    )
    ap.add_argument(
        "--quiet-wait",
        type=float,
        default=0.0,
        help=f"before each run, wait up to this many seconds for load < {QUIET_LOAD}",
    )
    args = ap.parse_args(argv)
    global QUIET_WAIT_S
    QUIET_WAIT_S = args.quiet_wait
    sizes = args.turns or [100_000]
    started = dt.datetime.now(dt.UTC)
    results = [bench_size(n, args) for n in sizes]
    md = [
        f"# clawtrace scan benchmark, {started:%Y-%m-%d %H:%M} UTC",
        "",
        f"Machine: {machine()}. Page cache warmed before every heavy run.",
        "",
    ]
    for r in results:
        md += [table(r), ""]
    text = "\n".join(md)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    stamp = f"{started:%Y%m%dT%H%M%S}"
    (out / f"agent_scan-{stamp}.md").write_text(text)
    (out / f"agent_scan-{stamp}.json").write_text(json.dumps(results, indent=2))
    print(text)
    print(f"\nwritten: {out}/agent_scan-{stamp}.md (+ .json)", file=sys.stderr)
    bad = [
        s["name"]
        for r in results
        for s in r["steps"]
        if s["rc"] != 0 or ("truth" in s and s["truth"] != "exact")
    ]
    if bad:
        print(f"\nFAILED or WRONG: {', '.join(bad)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
