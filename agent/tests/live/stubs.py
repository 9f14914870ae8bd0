"""Local stand-ins for the outside world in alert tests: a webhook receiver and an SMTP sink,
both on 127.0.0.1 and free ports. Nothing leaves the machine."""

from __future__ import annotations

import json
import socketserver
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class WebhookStub:
    """Answers POSTs with the scripted statuses in order ("hang" waits for `release`)."""

    def __init__(self, script: list[object]) -> None:
        self.script = list(script)
        self.bodies: list[dict] = []
        self.release = threading.Event()
        self.received = threading.Event()
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("content-length", 0))
                stub.bodies.append(json.loads(self.rfile.read(length)))
                stub.received.set()
                action = stub.script.pop(0) if stub.script else 200
                if action == "hang":
                    stub.release.wait(30)
                    action = 200
                try:
                    self.send_response(int(action))
                    self.send_header("content-length", "2")
                    self.end_headers()
                    self.wfile.write(b"ok")
                except OSError:
                    pass  # the client gave up (timeout): fine

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> WebhookStub:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


class SmtpSink:
    """Just enough SMTP (RFC 5321, no TLS, no auth) to receive messages into `messages`."""

    def __init__(self) -> None:
        self.messages: list[dict] = []
        self.got = threading.Event()
        sink = self

        class Handler(socketserver.StreamRequestHandler):
            def reply(self, line: str) -> None:
                self.wfile.write((line + "\r\n").encode())

            def handle(self) -> None:
                self.reply("220 sink ESMTP")
                sender, rcpts = None, []
                while True:
                    raw = self.rfile.readline()
                    if not raw:
                        return
                    cmd = raw.decode().strip()
                    verb = cmd.split(" ", 1)[0].upper()
                    if verb in ("EHLO", "HELO"):
                        self.reply("250-sink")
                        self.reply("250 8BITMIME")
                    elif verb == "MAIL":
                        sender = cmd.split(":", 1)[1].strip(" <>")
                        self.reply("250 ok")
                    elif verb == "RCPT":
                        rcpts.append(cmd.split(":", 1)[1].strip(" <>"))
                        self.reply("250 ok")
                    elif verb == "DATA":
                        self.reply("354 go")
                        lines = []
                        while True:
                            line = self.rfile.readline().decode()
                            if line in (".\r\n", ".\n", ""):
                                break
                            lines.append(line)
                        sink.messages.append({"from": sender, "to": rcpts, "data": "".join(lines)})
                        sink.got.set()
                        self.reply("250 queued")
                    elif verb == "QUIT":
                        self.reply("221 bye")
                        return
                    else:
                        self.reply("250 ok")

        self.server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> SmtpSink:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
