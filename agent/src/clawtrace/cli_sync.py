"""CLI commands of the sender: `login`, `logout`, `sync` (opt-in; see clawtrace/sync/).

Registered on the main typer app by `cli.py` with `cli_sync.register(app)`.
"""

from __future__ import annotations

import contextlib
import os
import sys
from typing import Annotated, Any

import typer

DEFAULT_SERVER = "https://clawtrace.dev"
# Refusals of `login` whose reason is the server's to give (the plan's device count: which
# plan allows more and where to upgrade): printed as the server wrote them.
LINK_REFUSALS = frozenset({"device_limit_reached"})


def _fail(message: str, code: int = 2) -> typer.Exit:
    typer.echo(f"Error: {message}", err=True)
    return typer.Exit(code)


def _device() -> Any:
    from clawtrace.sync.device import DeviceError, device_load

    try:
        return device_load()
    except DeviceError as exc:
        raise _fail(str(exc)) from None


def _linked() -> Any:
    device = _device()
    if device is None:
        raise _fail("this machine is not linked to a server: run `clawtrace login` first")
    return device


def login(
    server: Annotated[
        str | None,
        typer.Option("--server", help="The ClawTrace server (default: $CLAWTRACE_SERVER)."),
    ] = None,
    enroll_key: Annotated[
        str | None,
        typer.Option(
            "--enroll-key",
            envvar="CLAWTRACE_ENROLL_KEY",
            help="An enrollment key from the Devices page (no browser needed).",
            show_envvar=True,
        ),
    ] = None,
    name: Annotated[str | None, typer.Option("--name", help="Device name (default: host).")] = None,
    no_browser: Annotated[
        bool, typer.Option("--no-browser", help="Print the link; do not open a browser.")
    ] = False,
) -> None:
    """Link this machine to an organization on a ClawTrace server (opt-in sync)."""
    from clawtrace.sync.client import SyncError, server_url
    from clawtrace.sync.sender import link_interactively, link_with_key

    target = server or os.environ.get("CLAWTRACE_SERVER") or DEFAULT_SERVER
    existing = _device()
    if existing is not None:
        raise _fail(
            f"already linked to {existing.server} as {existing.name or existing.device_id}: "
            "run `clawtrace logout` first"
        )
    try:
        server_url(target)
        if enroll_key:
            device = link_with_key(target, enroll_key, name)
        else:
            device = link_interactively(
                target, name, show=lambda grant: _show_code(grant, open_browser=not no_browser)
            )
    except SyncError as exc:
        if exc.code in LINK_REFUSALS and exc.detail:
            raise _fail(f"the server refused to link this machine.\n{exc.detail}", 1) from None
        raise _fail(str(exc), 1) from None
    _enable_outbox()
    typer.echo(
        f"Linked as {device.name!r} to {device.organization or 'the organization'} on "
        f"{device.server}. `clawtrace sync` sends metadata only (times, models, token counts, "
        "costs; never message text); `clawtrace sync --dry-run` shows exactly what."
    )


def _show_code(grant: dict[str, Any], *, open_browser: bool) -> None:
    code = str(grant["user_code"])
    shown = f"{code[:4]}-{code[4:]}" if len(code) == 8 and "-" not in code else code
    url = grant.get("verification_uri_complete") or grant["verification_uri"]
    typer.echo(f"First copy your one-time code: {shown}")
    typer.echo(f"Then open {grant['verification_uri']} and enter it (it expires in 15 minutes).")
    if open_browser and sys.stdout.isatty() and not os.environ.get("CLAWTRACE_NO_BROWSER"):
        import webbrowser

        with contextlib.suppress(Exception):  # (no browser here: the link above is enough)
            webbrowser.open(url)
    typer.echo("Waiting for approval...")


def _enable_outbox() -> None:
    from clawtrace import store
    from clawtrace.sync import outbox

    conn = store.connect()
    try:
        outbox.outbox_enable(conn)
    finally:
        conn.close()


def logout(
    local: Annotated[
        bool,
        typer.Option("--local", help="Forget the link here even if the server cannot be told."),
    ] = False,
) -> None:
    """Revoke this device on the server and delete device.json."""
    from clawtrace import store
    from clawtrace.sync import outbox
    from clawtrace.sync.client import Client, SyncError
    from clawtrace.sync.device import device_forget

    device = _linked()
    try:
        with Client(device.server, device.secret, attempts=3) as client:
            client.revoke()
    except SyncError as exc:
        if exc.status != 401 and not local:
            raise _fail(
                f"{exc}. The device is still linked; `clawtrace logout --local` forgets it here "
                "(revoke it on the Devices page then)",
                1,
            ) from None
    device_forget()
    conn = store.connect()
    try:
        outbox.outbox_disable(conn)
    finally:
        conn.close()
    typer.echo(f"Logged out: {device.server} no longer accepts this device's secret.")


def sync(
    check: Annotated[
        bool, typer.Option("--check", help="Compare this machine's totals with the server's.")
    ] = False,
    resync: Annotated[
        bool, typer.Option("--resync", help="Send every turn again (safe: the server dedups).")
    ] = False,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Print exactly the JSON that would be sent.")
    ] = False,
    log: Annotated[bool, typer.Option("--log", help="Show what was sent so far.")] = False,
    json_out: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    no_scan: Annotated[
        bool, typer.Option("--no-scan", help="Send the store as it is; do not scan logs first.")
    ] = False,
) -> None:
    """Send the turns the server has not acknowledged (metadata only), or check or show it."""
    from clawtrace import cli_scan, store
    from clawtrace.config import ConfigError, config_load_warned

    if log:
        _show_egress()
        return
    device = _device() if dry_run else _linked()
    try:
        config = config_load_warned()
        conn = store.connect()
    except (ConfigError, store.StoreError) as exc:
        raise _fail(str(exc)) from None
    try:
        if not no_scan:
            from clawtrace.scan import scan

            scan(conn, config, progress=None)
        if dry_run:
            from clawtrace.sync.sender import dry_run_bodies

            out = sys.stdout.buffer
            for body in dry_run_bodies(conn, config, device):
                out.write(body + b"\n")
            out.flush()
            return
        if check:
            _check(conn, device, json_out)
            return
        _send(conn, config, device, resync=resync, json_out=json_out, printer=cli_scan.print_json)
    finally:
        conn.close()


def _send(
    conn: Any, config: Any, device: Any, *, resync: bool, json_out: bool, printer: Any
) -> None:
    from clawtrace.cli_scan import counted
    from clawtrace.sync import outbox
    from clawtrace.sync.sender import sync_run

    if resync:
        outbox.outbox_reset(conn)
    before = outbox.pending(conn) if outbox.enabled(conn) else None
    progress = None
    if not json_out and sys.stderr.isatty():
        progress = lambda r: print(  # noqa: E731
            f"\r  sent {r.events:,} events in {r.batches:,} batches", end="", file=sys.stderr
        )
    result = sync_run(conn, config, device, on_batch=progress)
    if progress is not None:
        print(file=sys.stderr)
    if json_out:
        printer({**result.as_dict(), "pending_before": before})
    else:
        typer.echo(
            f"Sent {counted(result.events, 'event')} in {counted(result.batches, 'batch')} to "
            f"{device.server}: "
            f"{result.accepted:,} new, {result.duplicates:,} already there"
            f"{f', {result.updated:,} updated' if result.updated else ''}"
            f"{f', {result.retracted:,} retracted' if result.retracted else ''}"
            f", in {result.seconds:.1f}s."
        )
    if result.error:
        left = sum(result.pending.values())
        raise _fail(f"{result.error}. {left:,} turns wait for the next `clawtrace sync`.", 1)


def _check(conn: Any, device: Any, json_out: bool) -> None:
    from clawtrace import cli_scan, reports
    from clawtrace.sync.client import Client, SyncError
    from clawtrace.sync.sender import totals_compare

    local = reports.totals(conn, reports.Filters(), "auto").as_dict()
    try:
        with Client(device.server, device.secret) as client:
            remote = client.stats()["totals"]
    except SyncError as exc:
        raise _fail(str(exc), 1) from None
    differ = totals_compare(local, remote)
    if json_out:
        cli_scan.print_json({"agree": not differ, "local": local, "server": remote})
    elif differ:
        typer.echo("This machine and the server disagree:")
        for line in differ:
            typer.echo(f"  {line}")
        typer.echo("Run `clawtrace sync` (or `clawtrace sync --resync`) to send what is missing.")
    else:
        typer.echo(
            f"In agreement: {local['turns']:,} turns, ${local['cost_usd']:,.2f} here and on "
            f"{device.server}."
        )
    if differ:
        raise typer.Exit(1)


def _show_egress() -> None:
    from clawtrace.paths import home_dir
    from clawtrace.sync.client import EGRESS_LOG

    path = home_dir() / EGRESS_LOG
    if not path.exists():
        typer.echo(f"Nothing has been sent from this machine ({path} does not exist).")
        return
    with open(path, "rb") as fh:
        for line in fh:
            sys.stdout.buffer.write(line)


def register(app: typer.Typer) -> None:
    app.command("login")(login)
    app.command("logout")(logout)
    app.command("sync")(sync)
