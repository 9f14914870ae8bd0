"""The `clawtrace` command. Thin: every figure comes from `reports`, every write from `scan`.

Report commands bring the store up to date first (an unchanged tree costs a few stat calls and
parses nothing); `--no-scan` reads the store as it is. Output is a rich table, or `--json` /
`--csv` for machines; `NO_COLOR` is honoured by rich.
"""

from __future__ import annotations

import copy
import csv
import io
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer

from clawtrace import __version__, cli_scan
from clawtrace.cli_dirs import dir_params, dirs_pop, with_source_dirs
from clawtrace.sources import SOURCES

app = typer.Typer(
    help="ClawTrace: where your agent tokens go. Reads "
    + " and ".join(s.title for s in SOURCES.values())
    + " logs locally.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
config_app = typer.Typer(help="Show or change the config file.", no_args_is_help=True)
prices_app = typer.Typer(help="Price library status and re-pricing.", no_args_is_help=True)
app.add_typer(config_app, name="config")
app.add_typer(prices_app, name="prices")

JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON.")]
CsvOpt = Annotated[bool, typer.Option("--csv", help="Print CSV.")]
TzOpt = Annotated[
    str | None,
    typer.Option("--timezone", "--tz", help="IANA zone for days (default: system zone)."),
]
ModeOpt = Annotated[
    str | None,
    typer.Option(
        "--mode",
        help="Cost shown: auto (ours, else the log's), calculate (ours), display (the log's).",
    ),
]
RangeOpt = Annotated[
    str | None,
    typer.Option(
        "--range", "-r", help="7d, 30d, today, week, month, all, or YYYY-MM-DD..YYYY-MM-DD."
    ),
]
ProjectOpt = Annotated[str | None, typer.Option("--project", help="Only this project.")]
ModelOpt = Annotated[str | None, typer.Option("--model", help="Only this model.")]
AgentOpt = Annotated[str | None, typer.Option("--agent", help="Only this agent.")]
SourceOpt = Annotated[str | None, typer.Option("--source", help=f"{' or '.join(SOURCES)}.")]
NoScanOpt = Annotated[
    bool, typer.Option("--no-scan", help="Read the store as it is; do not scan logs first.")
]


def _fail(message: str, code: int = 2) -> typer.Exit:
    typer.echo(f"Error: {message}", err=True)
    return typer.Exit(code)


def _output(json_out: bool, csv_out: bool) -> str:
    if json_out and csv_out:
        raise _fail("--json and --csv cannot be used together: pick one")
    return "json" if json_out else "csv" if csv_out else "table"


def _filter_value(option: str, value: str | None) -> str | None:
    """A filter as the store labels it: bytes of the command line that are not UTF-8 (a
    directory so named) become U+FFFD, as they were when the label was stored."""
    if value is None:
        return None
    from clawtrace.paths import label

    shown = label(value)
    if "\x00" in shown:
        raise _fail(f"{option} holds a NUL character")
    return shown


class _Ctx:
    """What every report command needs: config, store connection, zone, mode, filters, and
    the output chosen (`table`, `json` or `csv`)."""

    def __init__(
        self,
        *,
        output: str,
        tz: str | None,
        mode: str | None,
        range_: str | None,
        project: str | None,
        model: str | None,
        agent: str | None,
        source: str | None,
        dirs: Any,
        no_scan: bool,
    ) -> None:
        from clawtrace import reports, store
        from clawtrace.config import ConfigError, config_load_warned

        self.output = output
        try:
            self.config = config_load_warned()
        except ConfigError as exc:
            raise _fail(str(exc)) from None
        try:
            self.tz = reports.zone_resolve(tz or self.config.timezone)
        except reports.ReportError as exc:
            raise _fail(str(exc)) from None
        self.mode = mode or self.config.cost_mode
        if self.mode not in reports.COST_MODES:
            raise _fail(f"--mode must be one of {', '.join(reports.COST_MODES)}")
        self.now = datetime.now(UTC)
        self.range = range_
        try:
            since, until = reports.range_parse(range_, self.tz, self.now)
        except reports.ReportError as exc:
            raise _fail(str(exc)) from None
        if source is not None and source not in SOURCES:
            raise _fail(f"--source must be one of {', '.join(SOURCES)}")
        self.filters = reports.Filters(
            since_ms=since,
            until_ms=until,
            project=_filter_value("--project", project),
            model=_filter_value("--model", model),
            agent=_filter_value("--agent", agent),
            source=source,
        )
        try:
            self.conn = store.connect()
        except store.StoreError as exc:
            raise _fail(str(exc)) from None
        if no_scan:
            _note_if_unfinished(self.conn)
        else:
            _scan_quietly(self.conn, self.config, dirs, show_progress=output == "table")


def _note_if_unfinished(conn: Any) -> None:
    """`--no-scan` shows the store as it is; say so when the last scan did not finish."""
    from clawtrace.scan import scan_unfinished

    if scan_unfinished(conn):
        typer.echo(
            "Note: the last scan stopped before its end, so these figures may miss turns; "
            "run without --no-scan (or `clawtrace scan`) to finish it.",
            err=True,
        )


# The options every report shares, in the order `--help` lists them after the command's own.
_SHARED_OPTIONS: list[tuple[str, Any, Any]] = [
    ("json_out", JsonOpt, False),
    ("csv_out", CsvOpt, False),
    ("timezone", TzOpt, None),
    ("mode", ModeOpt, None),
    ("project", ProjectOpt, None),
    ("model", ModelOpt, None),
    ("agent", AgentOpt, None),
    ("source", SourceOpt, None),
    *dir_params(),
    ("no_scan", NoScanOpt, False),
]


def report_command(
    name: str | None = None,
    *,
    range_default: str | None = None,
    ranged: bool = True,
    costed: bool = True,
) -> Any:
    """Register `fn(ctx, **own_options)` as a report command taking the shared options (and
    `--range` when `ranged`, `--mode` when `costed`): typer reads the signature built here, so
    each command declares only what is its own."""
    import functools
    import inspect

    def register(fn: Any) -> Any:
        own = list(inspect.signature(fn, eval_str=True).parameters.values())[1:]
        shared = [("range_", RangeOpt, range_default)] if ranged else []
        shared += [o for o in _SHARED_OPTIONS if costed or o[0] != "mode"]
        params = own + [
            inspect.Parameter(n, inspect.Parameter.KEYWORD_ONLY, annotation=a, default=d)
            for n, a, d in shared
        ]

        @functools.wraps(fn)
        def command(**options: Any) -> None:
            common = {n: options.pop(n) for n, _, _ in shared}
            dirs = dirs_pop(common)
            ctx = _Ctx(
                dirs=dirs,
                output=_output(common.pop("json_out"), common.pop("csv_out")),
                tz=common.pop("timezone"),
                mode=common.pop("mode", None),
                range_=common.pop("range_", None),
                **common,
            )
            fn(ctx, **options)

        command.__signature__ = inspect.Signature(params, return_annotation=None)
        command.__annotations__ = {p.name: p.annotation for p in params}
        del command.__wrapped__  # typer must read the signature above, not fn's
        return app.command(name)(command)

    return register


def _scan_quietly(conn: Any, config: Any, dirs: Any, *, show_progress: bool) -> Any:
    from clawtrace.scan import scan

    return scan(
        conn,
        config,
        progress=cli_scan.progress_factory if show_progress else None,
        **dirs,
    )


# --- output helpers ----------------------------------------------------------------------------


def _console(soft_wrap: bool = False, highlight: bool = True) -> Any:
    from rich.console import Console

    return Console(soft_wrap=soft_wrap, highlight=highlight)


def _money(value: float) -> str:
    if value == 0:
        return "$0.00"
    sign = "-" if value < 0 else ""
    value = abs(value)
    if value >= 1:
        return f"{sign}${value:,.2f}"
    return f"{sign}${value:,.4f}"


def _all_tokens(row: dict[str, Any]) -> int:
    """Every token of a report row (its cache writes are one figure there)."""
    return sum(
        row[k] for k in ("input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens")
    )


def _tokens(n: int) -> str:
    return f"{n:,}"


def _print_csv(rows: list[dict[str, Any]], columns: list[str] | None = None) -> None:
    buf = io.StringIO()
    cols = columns or (list(rows[0].keys()) if rows else [])
    writer = csv.DictWriter(buf, fieldnames=cols, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for r in rows:
        writer.writerow({k: (";".join(v) if isinstance(v, list) else v) for k, v in r.items()})
    sys.stdout.write(buf.getvalue())


def _incomplete_note(unpriced_tokens: int, mode: str = "auto") -> str:
    if not unpriced_tokens:
        return ""
    if mode == "display":
        return f" + {unpriced_tokens:,} tokens with no cost written in the log (try --mode auto)"
    return f" + {unpriced_tokens:,} unpriced tokens (see `clawtrace doctor`)"


def _totals_table(
    title: str, rows: list[dict[str, Any]], key: str, totals: dict[str, Any], key_title: str
) -> Any:
    from rich.table import Table

    table = Table(title=title, show_footer=True, header_style="bold", footer_style="bold")
    table.add_column(key_title, footer="Total", overflow="fold", min_width=10)
    for col, head in (
        ("turns", "Turns"),
        ("input_tokens", "Input"),
        ("output_tokens", "Output"),
        ("cache_write_tokens", "Cache\nwrite"),
        ("cache_read_tokens", "Cache\nread"),
    ):
        table.add_column(head, justify="right", footer=_tokens(totals[col]))
    table.add_column("Cost", justify="right", footer=_money(totals["cost_usd"]), style="green")
    # Only when something is unpriced: an empty column costs an 80-column terminal its width.
    unpriced = bool(totals["unpriced_tokens"])
    if unpriced:
        table.add_column(
            "Unpriced tok.", justify="right", footer=_tokens(totals["unpriced_tokens"])
        )
    for r in rows:
        cells = [
            str(r[key]) if r[key] != "" else "(none)",
            _tokens(r["turns"]),
            _tokens(r["input_tokens"]),
            _tokens(r["output_tokens"]),
            _tokens(r["cache_write_tokens"]),
            _tokens(r["cache_read_tokens"]),
            _money(r["cost_usd"]),
        ]
        if unpriced:
            cells.append(_tokens(r["unpriced_tokens"]) if r["unpriced_tokens"] else "")
        table.add_row(*cells)
    return table


def _caption(ctx: _Ctx) -> str:
    from clawtrace.reports import zone_name

    notes = "".join(f" {s.cost_note}" for s in SOURCES.values() if s.cost_note)
    return f"Days in {zone_name(ctx.tz)}; cost mode {ctx.mode}.{notes}"


# --- commands -----------------------------------------------------------------------------------


@app.command()
def version() -> None:
    """Print the version."""
    typer.echo(__version__)


@app.command()
@with_source_dirs
def scan(
    dirs: Any = None,
    json_out: JsonOpt = False,
    workers: Annotated[
        int | None,
        typer.Option("--workers", min=1, max=cli_scan.WORKERS_MAX, help="Parser processes."),
    ] = None,
) -> None:
    """Read new lines from every log and update the store."""
    code = cli_scan.run(json_out, workers, **dirs)
    if code:
        raise typer.Exit(code)


@report_command(ranged=False)
def status(ctx: _Ctx) -> None:
    """Today, this week, this month, and the burn rate."""
    from clawtrace import reports

    data = reports.status(ctx.conn, ctx.filters, ctx.tz, ctx.now, ctx.mode)
    if ctx.output == "json":
        cli_scan.print_json(data)
        return
    rows = [{"period": p, **data[p]} for p in ("today", "week", "month")]
    if ctx.output == "csv":
        _print_csv(rows, ["period", *reports.TOTAL_KEYS, "sessions"])
        return
    from rich.table import Table

    table = Table(title="ClawTrace status", caption=_caption(ctx), header_style="bold")
    for head in ("Period", "Sessions", "Turns", "Tokens", "Cost", "Unpriced tok."):
        table.add_column(
            head,
            justify="left" if head == "Period" else "right",
            style="green" if head == "Cost" else None,
        )
    for r in rows:
        tokens = _all_tokens(r)
        table.add_row(
            {"today": "Today", "week": "This week", "month": "This month"}[r["period"]],
            _tokens(r["sessions"]),
            _tokens(r["turns"]),
            _tokens(tokens),
            _money(r["cost_usd"]),
            _tokens(r["unpriced_tokens"]) if r["unpriced_tokens"] else "",
        )
    console = _console()
    console.print(table)
    burn = data["burn_rate"]
    console.print(
        f"Burn rate (last 60 min): {_money(burn['cost_usd_per_hour'])}/hour, "
        f"{burn['tokens_per_minute']:,.0f} tokens/min, {burn['turns_last_hour']} turns."
    )
    if data["last_turn_at"]:
        console.print(f"Last turn: {data['last_turn_at']}")


@report_command("cost-report", range_default="30d")
def cost_report(
    ctx: _Ctx,
    by: Annotated[
        str,
        typer.Option(
            "--by",
            help="day, week, month, hour, model, provider, project, agent, session, branch, "
            "source.",
        ),
    ] = "day",
) -> None:
    """Spend over a range, grouped by time or by model/project/agent/session/branch."""
    from clawtrace import reports

    try:
        data = reports.cost_report(ctx.conn, ctx.filters, ctx.tz, ctx.now, by=by, mode=ctx.mode)
    except reports.ReportError as exc:
        raise _fail(str(exc)) from None
    if ctx.output == "json":
        cli_scan.print_json(
            {
                "rows": data["rows"],
                "totals": data["totals"],
                "by": by,
                "range": ctx.range,
                "mode": ctx.mode,
                "timezone": data["timezone"],
            }
        )
        return
    if ctx.output == "csv":
        _print_csv(data["rows"], [by, *reports.TOTAL_KEYS])
        return
    table = _totals_table(
        f"Cost by {by} ({ctx.range or 'all'})", data["rows"], by, data["totals"], by.capitalize()
    )
    table.caption = _caption(ctx)
    console = _console()
    console.print(table)
    note = _incomplete_note(data["totals"]["unpriced_tokens"], ctx.mode)
    if note:
        console.print(f"Totals are incomplete: {_money(data['totals']['cost_usd'])}{note}.")


@report_command()
def sessions(
    ctx: _Ctx,
    top: Annotated[int, typer.Option("--top", "-n", min=1, help="How many sessions.")] = 10,
) -> None:
    """The most expensive sessions."""
    from clawtrace import reports

    rows = reports.sessions_top(ctx.conn, ctx.filters, ctx.tz, ctx.now, n=top, mode=ctx.mode)
    if ctx.output == "json":
        cli_scan.print_json({"rows": rows})
        return
    if ctx.output == "csv":
        _print_csv(
            rows,
            [
                "session",
                "source",
                "agent",
                "project",
                "branch",
                "started_at",
                "ended_at",
                "models",
                "sidechain_turns",
                *reports.TOTAL_KEYS,
            ],
        )
        return
    from rich.table import Table

    table = Table(title=f"Top {top} sessions", caption=_caption(ctx), header_style="bold")
    for head in ("Session", "Agent", "Project", "Started", "Models", "Turns", "Tokens", "Cost"):
        right = head in ("Turns", "Tokens", "Cost")
        table.add_column(
            head, justify="right" if right else "left", no_wrap=right or head == "Session"
        )
    for r in rows:
        started = (
            datetime.fromisoformat(r["started_at"]).astimezone(ctx.tz).strftime("%Y-%m-%d %H:%M")
        )
        tokens = _all_tokens(r)
        table.add_row(
            r["session"][:8],
            r["agent"],
            Path(r["project"]).name or r["project"],
            started,
            ", ".join(r["models"]),
            _tokens(r["turns"])
            + (f" ({r['sidechain_turns']} sub)" if r["sidechain_turns"] else ""),
            _tokens(tokens),
            _money(r["cost_usd"]) + ("*" if r["unpriced_tokens"] else ""),
        )
    _console().print(table)


@report_command(ranged=False)
def blocks(
    ctx: _Ctx,
    active: Annotated[bool, typer.Option("--active", help="Only the active block.")] = False,
    recent: Annotated[int, typer.Option("--recent", min=1, help="How many recent blocks.")] = 10,
) -> None:
    """5-hour billing windows, with the active block's burn rate and projection."""
    from clawtrace import reports

    rows = reports.blocks(ctx.conn, ctx.filters, ctx.tz, ctx.now, ctx.mode)
    rows = [b for b in rows if b["active"]] if active else rows[-recent:]
    if ctx.output == "json":
        cli_scan.print_json({"rows": rows})
        return
    if ctx.output == "csv":
        _print_csv(rows, ["start", "end", "active", *reports.TOTAL_KEYS])
        return
    from rich.table import Table

    table = Table(title="5-hour blocks", caption=_caption(ctx), header_style="bold")
    for head in ("Start", "End", "Turns", "Tokens", "Cost", "Burn / hour", "Projected"):
        table.add_column(head, justify="left" if head in ("Start", "End") else "right")
    for b in rows:
        fmt = "%Y-%m-%d %H:%M"
        tokens = _all_tokens(b)
        table.add_row(
            datetime.fromisoformat(b["start"]).astimezone(ctx.tz).strftime(fmt)
            + (" (active)" if b["active"] else ""),
            datetime.fromisoformat(b["end"]).astimezone(ctx.tz).strftime(fmt),
            _tokens(b["turns"]),
            _tokens(tokens),
            _money(b["cost_usd"]),
            _money(b["burn_rate"]["cost_usd_per_hour"]) if b.get("burn_rate") else "",
            _money(b["projection"]["cost_usd"]) if b.get("projection") else "",
        )
    console = _console()
    console.print(table)
    if not any(b["active"] for b in rows) and active:
        console.print("No active block: no turns in the last 5 hours.")


@report_command(range_default="30d")
def tools(ctx: _Ctx) -> None:
    """Cost per tool: each turn's cost split evenly over the tools it called."""
    from clawtrace import reports

    data = reports.tools_report(ctx.conn, ctx.filters, ctx.tz, ctx.now, ctx.mode)
    if ctx.output == "json":
        cli_scan.print_json(data)
        return
    if ctx.output == "csv":
        _print_csv(data["rows"], ["tool", "calls", "turns", "cost_usd"])
        return
    from rich.table import Table

    table = Table(
        title=f"Cost per tool ({ctx.range or 'all'})", caption=_caption(ctx), header_style="bold"
    )
    for head in ("Tool", "Calls", "Turns", "Cost"):
        table.add_column(head, justify="left" if head == "Tool" else "right")
    for r in data["rows"]:
        table.add_row(r["tool"], _tokens(r["calls"]), _tokens(r["turns"]), _money(r["cost_usd"]))
    table.add_row("(turns without tools)", "", "", _money(data["no_tool_cost_usd"]))
    _console().print(table)


@report_command(range_default="30d", costed=False)
def cache(ctx: _Ctx) -> None:
    """What prompt caching saved (reads vs full input price) and what cache writes cost."""
    from clawtrace import reports

    data = reports.cache_report(ctx.conn, ctx.filters, ctx.tz, ctx.now)
    if ctx.output == "json":
        cli_scan.print_json(data)
        return
    if ctx.output == "csv":
        _print_csv(data["rows"])
        return
    from rich.table import Table

    t = data["totals"]
    table = Table(
        title=f"Prompt cache ({ctx.range or 'all'})",
        show_footer=True,
        header_style="bold",
        footer_style="bold",
    )
    table.add_column("Model", footer="Total")
    table.add_column("Cache read", justify="right")
    table.add_column("Write 5m", justify="right")
    table.add_column("Write 1h", justify="right")
    table.add_column("Hit ratio", justify="right")
    table.add_column("Saved", justify="right", footer=_money(t["saved_usd"]))
    table.add_column("Write cost", justify="right", footer=_money(t["write_cost_usd"]))
    table.add_column("Net", justify="right", footer=_money(t["net_saved_usd"]))
    for r in data["rows"]:
        table.add_row(
            r["model"],
            _tokens(r["cache_read_tokens"]),
            _tokens(r["cache_write_5m_tokens"]),
            _tokens(r["cache_write_1h_tokens"]),
            f"{r['hit_ratio']:.1%}",
            _money(r["saved_usd"]),
            _money(r["write_cost_usd"]),
            _money(r["net_saved_usd"]),
        )
    _console().print(table)


@report_command(ranged=False)
def forecast(ctx: _Ctx) -> None:
    """Month-end spend forecast from this month's daily spend, as a range."""
    from clawtrace import reports

    data = reports.forecast(ctx.conn, ctx.filters, ctx.tz, ctx.now, ctx.mode)
    if ctx.output == "json":
        cli_scan.print_json(data)
        return
    if ctx.output == "csv":
        _print_csv([data])
        return
    console = _console()
    console.print(
        f"[bold]{data['month']}[/bold]: {_money(data['month_to_date_usd'])} so far "
        f"({data['days_elapsed']:.1f} of {data['days_in_month']} days)."
    )
    console.print(
        f"Month-end forecast: {_money(data['expected_usd'])} "
        f"(likely range {_money(data['low_usd'])} to {_money(data['high_usd'])})."
    )
    if data["unpriced_tokens"]:
        console.print(f"Excludes {data['unpriced_tokens']:,} unpriced tokens.")


@app.command()
@with_source_dirs
def doctor(
    json_out: JsonOpt = False,
    dirs: Any = None,
    no_scan: NoScanOpt = False,
    rebuild: Annotated[
        bool,
        typer.Option(
            "--rebuild",
            help="Move the store aside (kept, renamed) and read the logs still on disk into a "
            "new one.",
        ),
    ] = False,
) -> None:
    """Paths found, unreadable lines, unpriced models, deleted logs, cleanup settings, and
    whether the store is sound."""
    from clawtrace import store
    from clawtrace.config import Config, ConfigError, config_load_warned
    from clawtrace.doctor import doctor_report
    from clawtrace.paths import db_path
    from clawtrace.repair import store_check
    from clawtrace.scan import source_roots

    config_problem = None
    try:
        config = config_load_warned()
    except ConfigError as exc:
        config_problem = str(exc)
        config = Config()
    if rebuild:
        _store_rebuild(config, dirs, json_out)
        return
    try:
        db_path().parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        from clawtrace.failures import explain

        raise _fail(explain(exc) or str(exc)) from None
    health = store_check(db_path())
    if health.damaged:
        _store_damaged_report(health, json_out)
        raise typer.Exit(2)
    try:
        conn = store.connect()
    except store.StoreError as exc:
        raise _fail(str(exc)) from None
    if not no_scan:
        _scan_quietly(conn, config, dirs, show_progress=not json_out)
    roots = source_roots(config, **dirs)
    data = doctor_report(conn, config, roots)
    data["config"]["problem"] = config_problem
    data["config"]["warnings"] = config.warnings
    data["store"].update(damaged=False, problems=[])
    if json_out:
        cli_scan.print_json(data)
        return
    console = _console(soft_wrap=True)
    st = data["store"]
    console.print(
        f"[bold]Store[/bold]: {st['path']} (schema v{st['schema_version']}, "
        f"{st['turns']:,} turns, {st['bytes']:,} bytes)"
    )
    cfg = data["config"]
    console.print(
        f"[bold]Config[/bold]: {cfg['path']} (cost mode {cfg['cost_mode']}"
        f"{', overrides: ' + ', '.join(cfg['price_overrides']) if cfg['price_overrides'] else ''})"
    )
    if config_problem:
        console.print(f"  [red]problem[/red]: {config_problem}")
    console.print(
        f"[bold]Prices[/bold]: {data['prices']['library']} "
        f"(fingerprint {data['prices']['fingerprint']})"
    )
    for name, s in data["sources"].items():
        counts = ", ".join(
            cli_scan.counted(s[key], noun)
            for key, noun in (
                ("files", "file"),
                ("lines", "line"),
                ("turns", "turn"),
                ("malformed", "malformed line"),
            )
        )
        console.print(f"[bold]{name}[/bold]: {counts}")
        for r in s["roots"]:
            console.print(f"  {'found  ' if r['exists'] else 'missing'} {r['path']}")
        for u in s.get("unreadable", []):
            console.print(f"  [red]cannot read[/red] {u}", highlight=False)
        for f in data["malformed_files"]:
            if f["source"] == name:
                console.print(
                    f"  malformed: {f['malformed']:,} of {cli_scan.counted(f['lines'], 'line')} "
                    f"in {f['path']}"
                )
    for p in data["pending_partial_lines"]:
        console.print(
            f"  waiting for the rest of a half-written line ({p['bytes']} bytes) in {p['path']}"
        )
    gone = data["files_gone"]
    kept = [n for s in SOURCES.values() if (n := s.retention_note(data))]
    console.print(
        f"[bold]Retention[/bold]: {' '.join([*kept, 'ClawTrace keeps every turn it has read.'])}"
    )
    if gone["count"]:
        console.print(
            f"  {gone['count']} log files are gone from disk; "
            f"their {gone['turns_kept']:,} turns are kept in the store."
        )
    for source in SOURCES.values():
        for note in source.doctor_notes(data):
            console.print(note)
    if data["unpriced_models"]:
        console.print(
            "[bold]Unpriced models[/bold] (counted, shown as unpriced; add a price in config.toml):"
        )
        for u in data["unpriced_models"]:
            console.print(
                f"  {u['provider']}/{u['model']} ({u['source']}): "
                f"{u['turns']:,} turns, {u['tokens']:,} tokens"
            )
            console.print("    " + u["override_hint"].replace("\n", "\n    "), markup=False)
    else:
        console.print("[bold]Unpriced models[/bold]: none")


def _store_damaged_report(health: Any, json_out: bool) -> None:
    where = label_of(health.path)
    if json_out:
        cli_scan.print_json({"store": health.as_dict()})
        return
    console = _console(soft_wrap=True)
    console.print(f"[bold]Store[/bold]: {where} is [red]damaged[/red]:", highlight=False)
    for problem in health.problems:
        console.print(f"  {problem}", markup=False, highlight=False)
    held = f"{health.turns:,} turns" if health.turns is not None else "turns"
    console.print(
        f"It may hold {held} whose logs are gone from disk, so keep it: copy "
        f"{label_of(health.path.parent)} somewhere safe first. Then `clawtrace doctor "
        "--rebuild` renames the damaged store (it stays beside the new one) and reads every log "
        "still on disk into a new store.",
        markup=False,
        highlight=False,
    )


def _store_rebuild(config: Any, dirs: Any, json_out: bool) -> None:
    from clawtrace import store
    from clawtrace.paths import db_path
    from clawtrace.repair import store_check, store_set_aside

    path = db_path()
    before = store_check(path)
    aside = None
    if path.exists() or before.damaged:
        lock_held = True
        try:
            with store.scan_lock(str(path), wait=False) as lock_held:
                if lock_held:
                    aside = store_set_aside(path)
        except OSError:
            # The lock itself is what is damaged (a directory in its place): nothing can be
            # scanning through it.
            aside = store_set_aside(path)
        if not lock_held:
            raise _fail(
                "a scan is running on this store (is `clawtrace serve` up?): stop it, then run "
                "`clawtrace doctor --rebuild` again"
            )
    try:
        conn = store.connect()
    except store.StoreError as exc:
        raise _fail(str(exc)) from None
    result = _scan_quietly(conn, config, dirs, show_progress=not json_out)
    turns = conn.execute("SELECT count(*) FROM turns").fetchone()[0]
    conn.close()
    data = {
        "old_store": label_of(aside) if aside else None,
        "old_turns": before.turns,
        "old_problems": before.problems,
        "new_store": label_of(path),
        "turns": turns,
        "files_read": result.files_read,
    }
    if json_out:
        cli_scan.print_json(data)
        return
    typer.echo(f"Read {turns:,} turns from {result.files_read:,} log files into a new store.")
    if aside is not None:
        held = f" ({before.turns:,} turns)" if before.turns is not None else ""
        typer.echo(
            f"The old store{held} is kept as {label_of(aside)}: turns whose logs are gone "
            f"are only there (`sqlite3 {label_of(aside)} .recover` can salvage a damaged one)."
        )


def label_of(path: Any) -> str:
    from clawtrace.paths import label

    return label(str(path))


@config_app.command("path")
def config_path_cmd() -> None:
    """Print the config file's path."""
    from clawtrace.paths import config_path

    typer.echo(str(config_path()))


@config_app.command("show")
def config_show(json_out: JsonOpt = False) -> None:
    """Show the effective settings."""
    from clawtrace.config import ConfigError, config_load_warned
    from clawtrace.paths import config_path, db_path

    try:
        cfg = config_load_warned()
    except ConfigError as exc:
        raise _fail(str(exc)) from None
    data = {
        "config_file": str(config_path()),
        "config_exists": config_path().exists(),
        "store": str(db_path()),
        "cost_mode": cfg.cost_mode,
        "timezone": cfg.timezone,
        **{s.dirs_key: cfg.source_dirs.get(s.dirs_key) for s in SOURCES.values()},
        "workers": cfg.workers,
        "price_overrides": [o.name for o in cfg.price_overrides],
        "provider_multipliers": cfg.provider_multipliers,
        "free_providers": sorted(cfg.free_providers),
        "other_sections": sorted(
            k for k in cfg.raw if k not in ("general", "sources", "prices", "providers")
        ),
    }
    if json_out:
        cli_scan.print_json(data)
        return
    for k, v in data.items():
        typer.echo(f"{k}: {v}")


@config_app.command("set")
def config_set_cmd(
    key: Annotated[
        str,
        typer.Argument(
            help="e.g. general.cost_mode, general.timezone, "
            f"sources.{next(iter(SOURCES.values())).dirs_key}"
        ),
    ],
    value: Annotated[
        str, typer.Argument(help="The value (TOML syntax for lists/numbers, else a string).")
    ],
) -> None:
    """Set one key in the config file (other sections are kept)."""
    import tomllib

    from clawtrace.config import ConfigError, config_set
    from clawtrace.paths import config_path

    try:
        parsed = tomllib.loads(f"v = {value}")["v"]
    except tomllib.TOMLDecodeError:
        parsed = value
    try:
        config_set(config_path(), key, parsed)
    except ConfigError as exc:
        raise _fail(str(exc)) from None
    typer.echo(f"{key} = {parsed!r} written to {config_path()}")


@prices_app.command("show")
def prices_show(
    model: Annotated[str, typer.Argument(help="Model id as logged.")],
    provider: Annotated[str, typer.Option("--provider", help="Provider as logged.")] = "anthropic",
    on: Annotated[str | None, typer.Option("--date", help="YYYY-MM-DD (default today).")] = None,
) -> None:
    """Show the per-million-token rates ClawTrace uses for one model."""
    from datetime import date

    from clawtrace.config import ConfigError, config_load_warned
    from clawtrace.pricing import COMPONENTS, Pricer

    try:
        cfg = config_load_warned()
        day = date.fromisoformat(on) if on else datetime.now(UTC).date()
    except (ConfigError, ValueError) as exc:
        raise _fail(str(exc)) from None
    ts = int(datetime(day.year, day.month, day.day, 12, tzinfo=UTC).timestamp() * 1000)
    card = Pricer(cfg).card(provider, model, ts)
    if card is None:
        raise _fail(
            f"no price known for {provider}/{model}; add one under [prices] in the config", 1
        )
    typer.echo(f"{provider}/{model} on {day}: {card.source}")
    for threshold, rates in card.tiers:
        label = "base" if threshold == 0 else f"total input > {threshold:,}"
        parts = []
        for name, r in zip(COMPONENTS, rates, strict=True):
            per = 1_000 if name == "web_search" else 1_000_000
            parts.append(f"{name} ${float(r) * per / 1e12:g}/{'1k' if per == 1000 else 'MTok'}")
        typer.echo(f"  {label}: " + ", ".join(parts))


@prices_app.command("reprice")
def prices_reprice_cmd() -> None:
    """Recompute every stored turn's cost with the current prices and overrides."""
    from clawtrace import store
    from clawtrace.config import ConfigError, config_load_warned
    from clawtrace.pricing import pricing_fingerprint
    from clawtrace.scan import prices_reprice

    try:
        cfg = config_load_warned()
        conn = store.connect()
    except (ConfigError, store.StoreError) as exc:
        raise _fail(str(exc)) from None
    n = prices_reprice(conn, cfg)
    store.meta_set(conn, "price_fingerprint", pricing_fingerprint(cfg))
    typer.echo(f"Re-priced {n:,} turns.")


from clawtrace import cli_live  # noqa: E402  (commands of the live agent: serve, service, alerts)

cli_live.register(app)

from clawtrace import cli_sync  # noqa: E402  (the opt-in sender: login, logout, sync)

cli_sync.register(app)


def _app_for(argv: list[str]) -> typer.Typer:
    """The app with only the command being run (and `version`): typer reads every command's
    signature on each start, about 60 ms for ours, which a report should not pay for the
    others. Help, errors and anything unrecognised get the full app."""
    name = argv[0] if argv else ""
    if not name or name.startswith("-"):
        return app

    def called(info: Any) -> str:
        return info.name or typer.main.get_command_name(info.callback.__name__)

    commands = [i for i in app.registered_commands if called(i) in (name, "version")]
    groups = [i for i in app.registered_groups if i.name == name]
    if not groups and not any(called(i) == name for i in commands):
        return app
    only = copy.copy(app)
    # Two commands keep it a group (one alone would become the whole program).
    only.registered_commands = commands if groups or len(commands) > 1 else app.registered_commands
    only.registered_groups = groups
    return only


def main() -> None:
    _app_for(sys.argv[1:])()


if __name__ == "__main__":
    main()
