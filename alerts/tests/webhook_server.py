"""A webhook receiver on a loopback port, in a thread: it answers from a script (status codes,
or "hang" to sleep past the client's timeout) and records every body it was sent."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

HANG = "hang"


class WebhookReceiver:
    def __init__(self) -> None:
        self.script: list[int | str] = []
        self.default: int | str = 200
        self.bodies: list[dict[str, Any]] = []
        self.paths: list[str] = []
        self.release = threading.Event()
        self.lock = threading.Lock()
        self.redirects: dict[str, str] = {}
        self.url = ""

    def answer_next(self) -> int | str:
        with self.lock:
            return self.script.pop(0) if self.script else self.default

    @property
    def hits(self) -> int:
        return len(self.bodies)


def _handler(receiver: WebhookReceiver) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:  # quiet
            pass

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length)
            with receiver.lock:
                receiver.bodies.append(json.loads(raw or b"{}"))
                receiver.paths.append(self.path)
            if self.path in receiver.redirects:
                self.send_response(307)
                self.send_header("Location", receiver.redirects[self.path])
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            answer = receiver.answer_next()
            if answer == HANG:
                # Past the client's timeout; released at teardown so the thread ends.
                receiver.release.wait(30)
                answer = 200
            try:
                self.send_response(int(answer))
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"{}")
            except (BrokenPipeError, ConnectionResetError):
                pass

    return Handler


@contextmanager
def webhook_receiver() -> Iterator[WebhookReceiver]:
    receiver = WebhookReceiver()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(receiver))
    server.daemon_threads = True
    receiver.url = f"http://127.0.0.1:{server.server_address[1]}/hooks/team"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield receiver
    finally:
        receiver.release.set()
        server.shutdown()
        server.server_close()
        thread.join(5)
