"""Run the live agent: watcher + alert engine + the API/page under uvicorn.

`ServerThread` runs the same stack in a background thread on a socket bound beforehand, so
tests (and the browser test) know the real port before the app is built: the Host-header check
follows the port actually bound.
"""

from __future__ import annotations

import logging
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import tzinfo
from pathlib import Path
from typing import Any

from clawtrace import reports
from clawtrace.alerts.engine import AlertDispatcher, AlertEngine, alerts_run
from clawtrace.alerts.settings import AlertSettings
from clawtrace.config import Config
from clawtrace.server.app import ServerState, app_create
from clawtrace.server.params import utc_now
from clawtrace.server.security import is_loopback, token_hash
from clawtrace.sources import source_dirs
from clawtrace.sync.auto import AutoSync
from clawtrace.watch import LiveScanner

log = logging.getLogger("clawtrace.serve")

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 19898


class BindRefused(ValueError):
    """A non-loopback address without --allow-remote and a token."""


def bind_check(host: str, allow_remote: bool, token: str | None) -> None:
    if is_loopback(host):
        return
    if not allow_remote or not token:
        raise BindRefused(
            f"refusing to listen on {host}: the API shows your spending and is meant for this "
            "machine only. To expose it anyway pass both --allow-remote and --token <secret> "
            "(every request will then need 'Authorization: Bearer <secret>')."
        )


@dataclass
class LiveStack:
    """Everything `serve` runs besides uvicorn itself."""

    state: ServerState
    scanner: LiveScanner | None
    dispatcher: AlertDispatcher | None
    syncer: AutoSync | None = None

    def start(self, *, background: bool) -> None:
        if self.scanner is not None:
            self.scanner.start(initial_scan=True, background=background)
        if self.syncer is not None:
            self.syncer.start()

    def stop(self) -> None:
        if self.scanner is not None:
            self.scanner.stop()
        if self.syncer is not None:
            self.syncer.stop()
        if self.dispatcher is not None:
            self.dispatcher.close(wait=True)


def live_stack_build(
    db_path: Path,
    config: Config,
    alert_settings: AlertSettings,
    tz: tzinfo | None = None,
    *,
    token: str | None = None,
    watch: bool = True,
    fallback_seconds: float = 30.0,
    dispatcher: AlertDispatcher | None = None,
    sync: bool = True,
    **dirs: list[str] | None,
) -> LiveStack:
    """`dirs`: each source's directories by Source.dirs_key (`claude_dirs=[...]`), instead of
    the config's."""
    dirs = source_dirs(dirs, "live_stack_build")
    zone = tz or reports.zone_resolve(config.timezone)
    state = ServerState(
        db_path=db_path,
        tz=zone,
        mode=config.cost_mode,
        alert_settings=alert_settings,
        token_hash=token_hash(token) if token else None,
    )
    if dispatcher is None:
        dispatcher = AlertDispatcher(db_path, alert_settings)
    engine = AlertEngine(alert_settings, zone, config.cost_mode)
    lock = threading.Lock()
    # Linked or not: each round reads device.json again, so a `clawtrace login` made while
    # serve runs takes effect without a restart.
    syncer = AutoSync(db_path, config) if sync and watch else None

    def after_scan(_result: Any) -> None:
        from clawtrace import store

        if syncer is not None:
            syncer.request()
        with lock:
            conn = store.connect(db_path)
            try:
                for _id, alert in alerts_run(conn, engine, utc_now(), dispatcher):
                    log.warning("alert: %s", alert.title)
            finally:
                conn.close()

    scanner = None
    if watch:
        scanner = LiveScanner(
            db_path,
            config,
            **dirs,
            on_scanned=after_scan,
            fallback_seconds=fallback_seconds,
        )
        state.rescan = scanner.request

        def status() -> dict[str, Any]:
            out = scanner.status()
            if syncer is not None:
                out["sync"] = syncer.status()
            return out

        state.status = status
    return LiveStack(state=state, scanner=scanner, dispatcher=dispatcher, syncer=syncer)


def _uvicorn_server(app: Any, host: str, port: int) -> Any:
    import uvicorn

    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level="warning",
        access_log=False,
        proxy_headers=False,  # nobody sits in front of a loopback server; never trust X-Forwarded
        server_header=False,
        lifespan="off",
    )
    return uvicorn.Server(config)


def listening_socket(host: str, port: int) -> socket.socket:
    """Bind before anything else starts, so "port in use" is a clear error, not a log line."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    return sock


def serve_forever(
    stack: LiveStack,
    host: str = DEFAULT_HOST,
    port: int = DEFAULT_PORT,
    *,
    allow_remote: bool = False,
    token: str | None = None,
    announce: Callable[[], None] | None = None,
) -> None:
    bind_check(host, allow_remote, token)
    try:
        sock = listening_socket(host, port)
    except OSError:
        stack.stop()
        raise
    if announce is not None:
        announce()
    app = app_create(stack.state, port, require_token_for_reads=not is_loopback(host))
    # Listen at once; the first import (seconds on a big history) runs in the background
    # and /api/health says `scanning` meanwhile.
    stack.start(background=True)
    server = _uvicorn_server(app, host, port)
    try:
        server.run(sockets=[sock])
    finally:
        stack.stop()
        sock.close()


class ServerThread:
    """The full server on 127.0.0.1 and a free port, in a thread (tests, embedding)."""

    def __init__(self, stack: LiveStack, host: str = "127.0.0.1", port: int = 0) -> None:
        self.stack = stack
        self.sock = listening_socket(host, port)
        self.host = host
        self.port = self.sock.getsockname()[1]
        self.app = app_create(stack.state, self.port)
        self.server = _uvicorn_server(self.app, host, self.port)
        self.thread = threading.Thread(
            target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True
        )

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def __enter__(self) -> ServerThread:
        self.stack.start(background=False)
        self.thread.start()
        started = threading.Event()

        def check() -> None:
            while not self.server.started and self.thread.is_alive():
                started.wait(0.02)

        check()
        if not self.server.started:
            raise RuntimeError("the server thread did not start")
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)
        self.stack.stop()
        self.sock.close()
