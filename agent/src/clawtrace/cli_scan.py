"""`clawtrace scan` without the CLI library.

The command cron, the menu bar app and every first-time user run most starts here: importing
typer and click is about 30 ms, a twentieth of a whole first scan of 100k turns. `clawtrace.cli`
declares the command (help, completion, errors) and runs the same `run`; `__main__` sends a
`scan` here only when `parse` knows every argument, so anything unusual (`--help`, a typo, a
bad number) still gets typer's own messages.
"""

from __future__ import annotations

import sys
from typing import Any

WORKERS_MAX = 64
# A first scan of less than this shows no progress bar: it is over in a second or two.
PROGRESS_MIN_BYTES = 64 * 1024 * 1024


def parse(args: list[str]) -> dict[str, Any] | None:
    """The options of `scan` as `run` takes them; None for anything this does not know."""
    from clawtrace.sources import SOURCES

    options: dict[str, Any] = {"json_out": False, "workers": None}
    # Each source's directory option, by the key `run` (and `scan`) takes it with.
    repeatable = {s.dir_option: s.dirs_key for s in SOURCES.values()}
    options.update(dict.fromkeys(repeatable.values()))
    i = 0
    while i < len(args):
        name, eq, value = args[i].partition("=")
        if name == "--json" and not eq:
            options["json_out"] = True
            i += 1
            continue
        if name not in repeatable and name != "--workers":
            return None
        if not eq:
            if i + 1 >= len(args) or args[i + 1].startswith("-"):
                return None
            value = args[i + 1]
            i += 1
        i += 1
        if name == "--workers":
            if not value.isdigit() or not 1 <= int(value) <= WORKERS_MAX:
                return None
            options["workers"] = int(value)
        else:
            options[repeatable[name]] = [*(options[repeatable[name]] or []), value]
    return options


def run(json_out: bool = False, workers: int | None = None, **dirs: list[str] | None) -> int:
    """Read new lines from every log and update the store; returns the exit status. `dirs`:
    each source's directories by Source.dirs_key (`claude_dirs=[...]`)."""
    from clawtrace import store
    from clawtrace.config import ConfigError, config_load_warned
    from clawtrace.scan import scan

    try:
        config = config_load_warned()
        conn = store.connect()
    except (ConfigError, store.StoreError) as exc:
        print(f"Error: {exc}", file=sys.stderr)
        return 2
    try:
        result = scan(
            conn,
            config,
            workers=workers,
            progress=None if json_out else progress_factory,
            **dirs,
        )
    finally:
        conn.close()
    if json_out:
        print_json(result.as_dict())
        return 0
    # Plain lines, no rich: nothing here is coloured, and a scan run from cron or a script
    # should not pay for the table library (or be wrapped at 80 columns).
    print(
        f"Scanned {counted(result.files_seen, 'file')} ({result.files_read:,} read, "
        f"{result.files_unchanged:,} unchanged"
        f"{f', {result.files_reset} re-read from the start' if result.files_reset else ''}"
        f"{f', {result.files_missing} gone, turns kept' if result.files_missing else ''}): "
        f"{result.bytes_read:,} bytes, {counted(result.turn_rows, 'turn record')}, "
        f"{counted(result.malformed, 'malformed line')}, in {result.seconds:.2f}s."
    )
    if result.repriced:
        print(f"Prices changed: re-priced {result.repriced:,} turns.")
    unreadable_report(result.roots)
    print(f"Store holds {result.turns_total:,} turns.")
    return 0


def unreadable_report(roots: dict[str, dict[str, list[str]]]) -> None:
    """Directories the listing could not enter: their logs are not counted, so say which (on
    stderr, so that `--json` output stays one document)."""
    unreadable = [u for found in roots.values() for u in found.get("unreadable", [])]
    if not unreadable:
        return
    print(
        f"Warning: {len(unreadable):,} director{'y' if len(unreadable) == 1 else 'ies'} could not "
        "be read, so the logs below them are not counted (fix the permission, or move a tree "
        "that is nested too deep to a shorter path):",
        file=sys.stderr,
    )
    for line in unreadable[:10]:
        print(f"  {line}", file=sys.stderr)
    if len(unreadable) > 10:
        print(
            f"  ... and {len(unreadable) - 10:,} more (`clawtrace doctor --json` lists all)",
            file=sys.stderr,
        )


def progress_factory(total_bytes: int, files: int, growing: bool = False) -> Any:
    """A rich progress bar on stderr for big (first) scans; nothing for small or warm ones.
    `growing`: a parallel scan that is still listing files (its workers started because there
    is a lot to read); the totals come later, through tick(0, total=..., files=...)."""
    if not sys.stderr.isatty() or (total_bytes < PROGRESS_MIN_BYTES and not growing):
        return None
    from rich.console import Console
    from rich.progress import BarColumn, DownloadColumn, Progress, TimeRemainingColumn

    progress = Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        DownloadColumn(),
        TimeRemainingColumn(),
        console=Console(stderr=True),
        transient=True,
    )

    def describe(n: int, final: bool) -> str:
        return f"Reading {n:,} log files" if final else "Reading log files (still listing)"

    # While the listing grows the bar pulses (no total yet) and counts what was read.
    task = progress.add_task(describe(files, not growing), total=None if growing else total_bytes)
    progress.start()
    state = {"done": 0, "total": total_bytes, "final": not growing}

    def tick(n: int, total: int | None = None, files: int | None = None) -> None:
        state["done"] += n
        if total is not None:
            state["total"], state["final"] = total, True
            progress.update(task, total=total, description=describe(files or 0, True))
        progress.update(task, advance=n)
        if state["final"] and state["done"] >= state["total"]:
            progress.stop()

    return tick


def counted(n: int, noun: str) -> str:
    """`1 malformed line`, `2 malformed lines`, `1 batch`, `3 batches`: every command's counts."""
    if n == 1:
        return f"{n:,} {noun}"
    return f"{n:,} {noun}{'es' if noun.endswith(('ch', 'sh', 's', 'x')) else 's'}"


def print_json(data: Any) -> None:
    import orjson

    out = orjson.dumps(data, option=orjson.OPT_INDENT_2) + b"\n"
    raw = getattr(sys.stdout, "buffer", None)
    if raw is None:  # a text-only stream (tests, embedding)
        sys.stdout.write(out.decode())
        return
    sys.stdout.flush()  # (anything printed before goes first)
    raw.write(out)
    raw.flush()
