#!/usr/bin/env python3
"""Benchmark the figure a user feels: `clawtrace sync` of a whole history to a local server.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres .venv/bin/python bench/sync.py \
        [--turns 100000,1000000] [--corpora bench/corpora] [--workers 3] [--port 8766]

For each size: the corpus from bench/corpus.py (`<corpora>/t<turns>-s1-v<version>/`, reused
when it is there: it is never regenerated or removed; made in bench/corpora otherwise); a
fresh database (`BENCH_DB`, default `clawtrace_bench_sync`, dropped and made again), migrated,
with a user, an organization and an enrollment key made by `manage.py init_from_env` (the
headless set-up's CLAWTRACE_INIT_* variables); the production stack of bench/ingest.py
(gunicorn, sync workers, DEBUG off, persistent connections). Then, in a fresh CLAWTRACE_HOME
(and an empty HOME):

1. `clawtrace scan` (not part of the figure: the store a user already has);
2. `clawtrace login --server ... --enroll-key ...`;
3. timed: `clawtrace sync --json` as a user runs it (a warm rescan, then every turn). Wall
   time, the sender's own CPU (wait4's rusage) and its peak RSS (VmHWM read from
   /proc/<pid>/status every 20 ms: the kernel keeps the high-water mark, so a sample misses
   only the last 20 ms, and reading it walks no page tables; wait4's ru_maxrss would start
   from this script's RSS, as Linux keeps the pre-exec mark); the CPU the gunicorn workers
   and their PostgreSQL backends spent meanwhile (from /proc), to say who the bottleneck is;
4. checks: `clawtrace sync --check` says "In agreement", and the organization's totals on the
   server (`GET /api/v1/stats?scope=organization`) equal the corpus's truth.json.

Prints a markdown table and writes it with the raw figures to bench/out/sync-<time>.md.
The target (issue 14): 1M turns in under 60 s and 150 MB. Never a test.
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path.insert(0, str(BENCH))

import corpus  # noqa: E402  (bench/ is not a package)
from agent_scan import _compile_bytecode, clawtrace_bin, machine, warm_cache  # noqa: E402


def _bench_module(name: str):
    """bench/<name>.py under another name: `ingest` is also the site's app, which Django
    imports by that name."""
    spec = importlib.util.spec_from_file_location(f"bench_{name}", BENCH / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


ingest = _bench_module("ingest")  # the production stack and the database, as it runs them

BENCH_DB = os.environ.get("BENCH_DB", "clawtrace_bench_sync")
ENROLL_KEY = "cte_" + "benchsync" * 5 + "k"
INIT = {
    "CLAWTRACE_INIT_USER_EMAIL": "bench@sync.example",
    "CLAWTRACE_INIT_USER_PASSWORD": "a long bench password 42",
    "CLAWTRACE_INIT_ORG_NAME": "Bench Sync",
    "CLAWTRACE_INIT_ORG_SLUG": "bench-sync",
    "CLAWTRACE_INIT_ENROLL_KEY": ENROLL_KEY,
}
TOKEN_KEYS = ("turns", "input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens")
TICKS = os.sysconf("SC_CLK_TCK")


# ----------------------------------------------------------------------------- measuring


def _cpu_seconds(pid: int) -> float:
    """utime + stime of one process, from /proc/<pid>/stat (0 when it is gone)."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / TICKS


def _pids_where(match) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as fh:
                cmdline = fh.read().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if match(int(entry), cmdline):
            found.append(int(entry))
    return found


class ServerCpu:
    """CPU seconds the gunicorn master and workers and the PostgreSQL backends connected to
    `database` (the workers' connections) spend from `start()` to `stop()`. Read from /proc
    every quarter second, per process, so that a backend that ends meanwhile (a connection a
    worker closed and opened again) still counts up to its last reading."""

    def __init__(self, gunicorn_pid: int, database: str) -> None:
        self.gunicorn_pid, self.database = gunicorn_pid, database
        self.first: dict[tuple[str, int], float] = {}
        self.last: dict[tuple[str, int], float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _read(self) -> dict[tuple[str, int], float]:
        workers = _pids_where(lambda pid, _cmd: _parent(pid) == self.gunicorn_pid)
        backends = _pids_where(
            lambda _pid, cmd: cmd.startswith("postgres:") and f" {self.database} " in cmd
        )
        seen = {("gunicorn", pid): _cpu_seconds(pid) for pid in [self.gunicorn_pid, *workers]}
        seen.update({("postgres", pid): _cpu_seconds(pid) for pid in backends})
        return seen

    def _run(self) -> None:
        while not self._stop.wait(0.25):
            self.last.update(self._read())

    def start(self) -> None:
        self.first = self._read()
        self.last = dict(self.first)
        self._thread.start()

    def stop(self) -> dict[str, float]:
        self._stop.set()
        self._thread.join()
        self.last.update(self._read())
        spent = {"gunicorn": 0.0, "postgres": 0.0}
        for (kind, pid), cpu in self.last.items():
            spent[kind] += cpu - self.first.get((kind, pid), 0.0)  # (new ones from zero)
        return spent


def _parent(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return int(fh.read().rsplit(")", 1)[1].split()[1])
    except (OSError, ValueError, IndexError):
        return -1


def _hwm_kb(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return 0


def run_timed(argv: list[str], env: dict[str, str], timeout: float = 3600) -> dict:
    """Run one child: wall time, its CPU (wait4), its peak RSS and that of any process it
    started (VmHWM sampled every 20 ms), its output."""
    peak_kb = 0
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        started = time.perf_counter()
        proc = subprocess.Popen(argv, env=env, stdout=out, stderr=err)
        killer = threading.Timer(timeout, proc.kill)
        killer.start()
        try:
            while True:
                pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
                if pid:
                    break
                tree = [proc.pid, *_pids_where(lambda p, _c: _parent(p) == proc.pid)]
                peak_kb = max(peak_kb, *(_hwm_kb(p) for p in tree))
                time.sleep(0.02)
        finally:
            killer.cancel()
        wall = time.perf_counter() - started
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read().decode(errors="replace"), err.read().decode(errors="replace")
    return {
        "argv": argv,
        "rc": os.waitstatus_to_exitcode(status),
        "wall_s": wall,
        "cpu_s": usage.ru_utime + usage.ru_stime,
        "rss_mb": peak_kb / 1024,
        "stdout": stdout,
        "stderr": stderr[-3000:],
    }


def _check(result: dict, what: str) -> dict:
    if result["rc"] != 0:
        raise SystemExit(f"{what} failed (rc {result['rc']}): {result['stderr'][-1500:]}")
    return result


# ----------------------------------------------------------------------------- one size


def corpus_find(turns: int, corpora: Path) -> tuple[Path, dict]:
    """The corpus of this size (seed 1) where it is, or made in bench/corpora; never removed
    or regenerated (another benchmark may be reading it)."""
    name = f"t{turns}-s1-v{corpus.GENERATOR_VERSION}"
    for root in (corpora, BENCH / "corpora"):
        truth = root / name / "truth.json"
        if truth.exists():
            return root / name, json.loads(truth.read_bytes())
    path = BENCH / "corpora" / name
    if path.exists():
        raise SystemExit(f"{path} exists without a truth.json: remove it or pass --corpora")
    return path, corpus.generate(path, turns, seed=1)


def database_ready(base_url: str) -> str:
    """The fresh, migrated database, with the headless set-up's user, org and key."""
    db_url = ingest.database_recreate(base_url, BENCH_DB)
    os.environ.update(INIT)
    if "django" in sys.modules:
        # A second size: the same process, a new database of the same name.
        from django.core.management import call_command
        from django.db import connections

        connections.close_all()
        call_command("migrate", verbosity=0, interactive=False)
    else:
        ingest.django_setup(db_url)
    from django.core.management import call_command
    from django.db import connections

    call_command("init_from_env", verbosity=0)
    connections.close_all()
    return db_url


def bench_size(turns: int, args: argparse.Namespace, base_url: str) -> dict:
    data, truth = corpus_find(turns, Path(args.corpora))
    print(f"\n## {turns:,} turns: {data}", file=sys.stderr)
    db_url = database_ready(base_url)
    work = Path(tempfile.mkdtemp(prefix="clawtrace-bench-sync-"))
    (work / "home").mkdir()
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(work / "home"),
        "TZ": "UTC",
        "LANG": "C.UTF-8",
        "NO_COLOR": "1",
        "CLAWTRACE_NO_BROWSER": "1",
        "CLAWTRACE_HOME": str(work / "clawtrace"),
        "CLAUDE_CONFIG_DIR": str(data / "claude"),
        "OPENCLAW_STATE_DIR": str(data / "openclaw"),
    }
    ct = clawtrace_bin()
    server_url = f"http://127.0.0.1:{args.port}"
    server = ingest.gunicorn_start(db_url, args.port, args.workers)
    row: dict = {"turns": turns, "corpus": str(data), "workers": args.workers}
    try:
        warm_cache(data)
        scan = _check(run_timed([*ct, "scan", "--json"], env), "clawtrace scan")
        row["scan_s"] = scan["wall_s"]
        os.sync()  # (the new store's writeback must not land in the timed sync)
        _check(
            run_timed([*ct, "login", "--server", server_url, "--enroll-key", ENROLL_KEY], env),
            "clawtrace login",
        )
        row["load_before"] = os.getloadavg()[0]
        server_cpu = ServerCpu(server.pid, BENCH_DB)
        server_cpu.start()
        sync_argv = [*ct, "sync", "--json"]
        if args.profile:
            # cProfile slows the sender by about a third: a profiled run is for its shape.
            profile = BENCH / "out" / f"sync-{turns}.prof"
            profile.parent.mkdir(exist_ok=True)
            sync_argv = [sys.executable, "-m", "cProfile", "-o", str(profile)]
            sync_argv += ["-m", "clawtrace", "sync", "--json"]
        sync = _check(run_timed(sync_argv, env), "clawtrace sync")
        spent = server_cpu.stop()
        row["load_after"] = os.getloadavg()[0]
        sent = json.loads(sync["stdout"])
        row.update(
            sync_s=sync["wall_s"],
            sender_cpu_s=sync["cpu_s"],
            rss_mb=sync["rss_mb"],
            gunicorn_cpu_s=spent["gunicorn"],
            postgres_cpu_s=spent["postgres"],
            events=sent["events"],
            batches=sent["batches"],
            accepted=sent["accepted"],
            sender_seconds=sent["seconds"],
            error=sent["error"],
        )
        check = run_timed([*ct, "sync", "--check", "--no-scan"], env)
        if args.profile:
            import pstats

            pstats.Stats(str(profile), stream=sys.stderr).sort_stats("cumulative").print_stats(40)
        row["check"] = check["stdout"].strip() or check["stderr"].strip()
        row["check_agrees"] = check["rc"] == 0 and "In agreement" in check["stdout"]
        secret = json.loads((work / "clawtrace" / "device.json").read_text())["secret"]
        held = httpx.get(
            f"{server_url}/api/v1/stats",
            params={"scope": "organization"},
            headers={"Authorization": f"Bearer {secret}"},
            timeout=600,
        ).json()["totals"]
        want = {key: truth["totals"][key] for key in TOKEN_KEYS}
        got = {key: held[key] for key in TOKEN_KEYS}
        row["server_totals"] = got
        row["truth"] = "exact" if got == want else f"DIFFERS: server {got}, truth {want}"
    finally:
        ingest.gunicorn_stop(server)
        shutil.rmtree(work, ignore_errors=True)
    print(
        f"  sync {row['sync_s']:.1f} s, {row['rss_mb']:.0f} MB, sender CPU "
        f"{row['sender_cpu_s']:.1f} s, gunicorn {row['gunicorn_cpu_s']:.1f} s, PostgreSQL "
        f"{row['postgres_cpu_s']:.1f} s; check: {row['check_agrees']}; truth: {row['truth']}",
        file=sys.stderr,
    )
    return row


def table(rows: list[dict], args: argparse.Namespace) -> str:
    lines = [
        f"sync benchmark, {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC, {machine()}, gunicorn "
        f"{args.workers} sync workers + PostgreSQL on the same machine",
        "",
        "| turns | scan s (not timed) | sync wall s | turns/s | peak RSS MB | sender CPU s "
        "| gunicorn CPU s | PostgreSQL CPU s | batches | check | server = truth "
        "| load before/after |",
        "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- | --- | --- |",
    ]
    for r in rows:
        lines.append(
            f"| {r['turns']:,} | {r['scan_s']:.1f} | {r['sync_s']:.1f} | "
            f"{r['events'] / r['sync_s']:,.0f} | {r['rss_mb']:.0f} | {r['sender_cpu_s']:.1f} | "
            f"{r['gunicorn_cpu_s']:.1f} | {r['postgres_cpu_s']:.1f} | {r['batches']:,} | "
            f"{'agrees' if r['check_agrees'] else 'DISAGREES'} | {r['truth']} | "
            f"{r['load_before']:.2f} / {r['load_after']:.2f} |"
        )
    lines += [
        "",
        "sync wall: `clawtrace sync --json` as a user runs it (a warm rescan of the logs, then "
        "every turn in batches of 1,000, gzip), from a store made by `clawtrace scan`. Peak "
        "RSS: the sender's VmHWM. CPU: the sender's own (wait4), the gunicorn workers' and "
        "their PostgreSQL backends' over the same interval (from /proc). Load: the 1-minute "
        "load average (2 cores, shared: above ~1 the figure is pessimistic). Target (issue "
        "14): 1M turns under 60 s and 150 MB.",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--turns", default="100000,1000000")
    parser.add_argument("--corpora", default=str(BENCH / "corpora"))
    parser.add_argument("--workers", type=int, default=3, help="gunicorn sync workers")
    parser.add_argument("--port", type=int, default=8766)
    parser.add_argument(
        "--profile", action="store_true", help="run the sync under cProfile (its figures too)"
    )
    args = parser.parse_args()
    base_url = os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/postgres")
    if not base_url.startswith(("postgres://", "postgresql://")):
        raise SystemExit("DATABASE_URL must point at PostgreSQL")
    _compile_bytecode()
    rows = [bench_size(int(n), args, base_url) for n in args.turns.split(",")]
    text = table(rows, args)
    print(text)
    out = BENCH / "out"
    out.mkdir(exist_ok=True)
    stamp = f"{dt.datetime.now(dt.UTC):%Y%m%dT%H%M%S}"
    raw = json.dumps(rows, indent=2, default=str)
    (out / f"sync-{stamp}.md").write_text(f"{text}\n\n```json\n{raw}\n```\n")


if __name__ == "__main__":
    main()
