"""CLI commands of the live agent: `serve`, `service install|uninstall|status`, `alerts test|list`.

Registered on the main typer app by `cli.py` with `cli_live.register(app)`. Heavy imports
(uvicorn, starlette, watchdog, httpx) happen inside the commands so report commands stay fast.
"""

from __future__ import annotations

import errno
import json
from typing import Annotated, Any

import typer

service_app = typer.Typer(
    help="Start `clawtrace serve` at login (systemd user unit / launchd).", no_args_is_help=True
)
alerts_app = typer.Typer(help="Alert channels and the alerts fired so far.", no_args_is_help=True)


def _fail(message: str, code: int = 2) -> typer.Exit:
    typer.echo(f"Error: {message}", err=True)
    return typer.Exit(code)


def _load() -> tuple[Any, Any]:
    """Config and alert settings, or a clear error naming the line and key."""
    from clawtrace.alerts.settings import alert_settings_load
    from clawtrace.config import ConfigError, config_load_warned

    try:
        config = config_load_warned()
        return config, alert_settings_load(config)
    except ConfigError as exc:
        raise _fail(str(exc)) from None


def serve(
    host: Annotated[
        str, typer.Option(help="Address to listen on (loopback only unless --allow-remote).")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.", min=1, max=65535)] = 19898,
    allow_remote: Annotated[
        bool, typer.Option("--allow-remote", help="Allow a non-loopback --host (needs --token).")
    ] = False,
    token: Annotated[
        str | None,
        typer.Option(help="API token; required with --allow-remote.", show_default=False),
    ] = None,
    dirs: Any = None,
    rescan_seconds: Annotated[
        float, typer.Option(help="Fallback full rescan interval.", min=2.0)
    ] = 30.0,
) -> None:
    """Keep the store current as agents write, serve the API and page, and raise alerts."""
    from clawtrace import store
    from clawtrace.paths import db_path, home_dir
    from clawtrace.server.runner import BindRefused, bind_check, live_stack_build, serve_forever
    from clawtrace.server.security import local_token_ensure

    try:
        bind_check(host, allow_remote, token)
    except BindRefused as exc:
        raise _fail(str(exc)) from None
    config, alert_settings = _load()
    server_cfg = config.raw.get("server", {}) if isinstance(config.raw.get("server"), dict) else {}
    api_token = token or server_cfg.get("token") or local_token_ensure(home_dir())
    try:
        store.connect(db_path()).close()
    except store.StoreError as exc:
        raise _fail(str(exc)) from None
    stack = live_stack_build(
        db_path(),
        config,
        alert_settings,
        token=api_token,
        fallback_seconds=rescan_seconds,
        **dirs,
    )

    def announce() -> None:
        # The address the README and `make run` print (the Host check accepts localhost too).
        shown = f"[{host}]" if ":" in host else host
        typer.echo(
            f"ClawTrace is watching your agent logs. Open http://{shown}:{port}/  (Ctrl-C to stop)"
        )
        from clawtrace.sync.auto import sync_announce

        if line := sync_announce(config):
            typer.echo(line)
        if not token and not server_cfg.get("token"):
            typer.echo(
                f"Write endpoints (POST /api/rescan) take the token in {home_dir() / 'api-token'}"
            )

    try:
        serve_forever(
            stack, host, port, allow_remote=allow_remote, token=api_token, announce=announce
        )
    except OSError as exc:
        hint = ""
        if exc.errno == errno.EADDRINUSE:
            hint = (
                f" (is another `clawtrace serve` running? see http://127.0.0.1:{port}/api/health;"
                " or pick another --port)"
            )
        raise _fail(f"cannot listen on {host}:{port}: {exc.strerror or exc}{hint}") from None


@service_app.command("install")
def service_install_cmd(
    port: Annotated[
        int, typer.Option(help="Port the service listens on.", min=1, max=65535)
    ] = 19898,
) -> None:
    """Install and start the login service."""
    from clawtrace.service import service_install

    report = service_install(port=port)
    for line in report.lines:
        typer.echo(line)
    if not report.ok:
        raise typer.Exit(1)


@service_app.command("uninstall")
def service_uninstall_cmd() -> None:
    """Stop and remove the login service."""
    from clawtrace.service import service_uninstall

    report = service_uninstall()
    for line in report.lines:
        typer.echo(line)
    if not report.ok:
        raise typer.Exit(1)


@service_app.command("status")
def service_status_cmd() -> None:
    """Whether the login service is installed and running."""
    from clawtrace.service import service_status

    report = service_status()
    for line in report.lines:
        typer.echo(line)
    if not report.ok:
        raise typer.Exit(1)


@alerts_app.command("test")
def alerts_test() -> None:
    """Send a test message to every configured channel and say how each went."""
    from clawtrace.alerts.channels import Alert, channels_send

    _, settings = _load()
    alert = Alert(
        rule="test",
        window_key="test",
        severity="info",
        title="ClawTrace test alert",
        message="This is a test: your ClawTrace alerts reach this channel.",
    )
    results = channels_send(alert, settings)
    if not results:
        typer.echo(
            "No channel is configured: add [alerts.webhook] or [alerts.email] to the config file."
        )
        raise typer.Exit(1)
    if all(r.skipped for r in results):
        for r in results:
            typer.echo(f"{r.channel}: skipped ({r.error})")
        typer.echo(
            "No channel could deliver: add [alerts.webhook] or [alerts.email] to the config file."
        )
        raise typer.Exit(1)
    failed = False
    for r in results:
        if r.ok:
            typer.echo(
                f"{r.channel}: sent" + (f" ({r.attempts} attempts)" if r.attempts > 1 else "")
            )
        elif r.skipped:
            typer.echo(f"{r.channel}: skipped ({r.error})")
        else:
            failed = True
            typer.echo(f"{r.channel}: FAILED after {r.attempts} attempt(s): {r.error}")
    if failed:
        raise typer.Exit(1)


@alerts_app.command("list")
def alerts_list(
    json_out: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    n: Annotated[int, typer.Option("-n", help="How many.", min=1)] = 50,
) -> None:
    """Alerts fired so far, newest first."""
    from clawtrace import reports, store
    from clawtrace.alerts.engine import alerts_fired_list

    config, _ = _load()
    tz = reports.zone_resolve(config.timezone)
    try:
        conn = store.connect(readonly=True)
    except store.StoreError as exc:
        raise _fail(str(exc)) from None
    items = alerts_fired_list(conn, tz, None, n)
    if json_out:
        typer.echo(json.dumps(items, indent=2))
        return
    if not items:
        typer.echo("No alerts have fired.")
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title="Alerts fired")
    for col in ("When", "Rule", "Severity", "Alert", "Channels"):
        table.add_column(col)
    for item in items:
        channels = ", ".join(
            f"{c['channel']}:{'ok' if c['ok'] else 'skipped' if c.get('skipped') else 'failed'}"
            for c in item["channels"]
        )
        table.add_row(
            item["fired_at"], item["rule"], item["severity"], item["title"], channels or "-"
        )
    Console().print(table)


def register(app: typer.Typer) -> None:
    from clawtrace.cli_dirs import with_source_dirs

    app.command("serve")(with_source_dirs(serve))
    app.add_typer(service_app, name="service")
    app.add_typer(alerts_app, name="alerts")
