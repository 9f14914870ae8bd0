"""A stand-in for the hosted ingest API (docs/sync-protocol.md), over real HTTP on 127.0.0.1,
for the sender's own tests. The real site is tested against the same sender in the hosted
suite; this one can be told to fail on purpose."""

from __future__ import annotations

import gzip
import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


def _total(e: dict[str, Any]) -> int:
    return sum(
        e[k]
        for k in (
            "input_tokens",
            "output_tokens",
            "cache_read_tokens",
            "cache_write_5m_tokens",
            "cache_write_1h_tokens",
        )
    )


@dataclass
class FakeServer:
    events: dict[str, dict[str, Any]] = field(default_factory=dict)
    bodies: list[bytes] = field(default_factory=list)  # every request body, decompressed
    ingested: list[bytes] = field(default_factory=list)  # the bodies posted to /api/v1/ingest
    fail_next: list[int] = field(default_factory=list)  # statuses to answer before succeeding
    secret: str = "ctd_" + "a" * 52
    revoked: bool = False
    polls: int = 0
    approve_after: int = 2
    interval: int = 5  # seconds between polls the device code asks for
    slow_down_first: bool = True  # the first poll is answered slow_down
    # When set, linking is refused as the site refuses a device past the plan's count: the
    # enrollment, and the token poll once approved, answer 403 device_limit_reached with this.
    link_refusal: str | None = None
    url: str = ""

    def totals(self) -> dict[str, Any]:
        out = dict.fromkeys(
            ("turns", "input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens"),
            0,
        )
        cost = 0.0
        for e in self.events.values():
            out["turns"] += 1
            out["input_tokens"] += e["input_tokens"]
            out["output_tokens"] += e["output_tokens"]
            out["cache_read_tokens"] += e["cache_read_tokens"]
            out["cache_write_tokens"] += e["cache_write_5m_tokens"] + e["cache_write_1h_tokens"]
            value = e["cost_usd"] if e["cost_usd"] is not None else e["logged_cost_usd"]
            cost += float(value or 0)
        out["cost_usd"] = round(cost, 10)
        return out

    def ingest(self, body: dict[str, Any]) -> dict[str, int]:
        answer = {"accepted": 0, "duplicates": 0, "updated": 0, "retracted": 0}
        for event in body["events"]:
            held = self.events.get(event["event_id"])
            if held is None:
                self.events[event["event_id"]] = event
                answer["accepted"] += 1
                continue
            answer["duplicates"] += 1
            fuller = (_total(event), event["timestamp"]) >= (_total(held), held["timestamp"])
            if fuller and event != held:
                merged = dict(event, tools=sorted(set(held["tools"]) | set(event["tools"])))
                self.events[event["event_id"]] = merged
                answer["updated"] += 1
        for event_id in body.get("retract", []):
            if self.events.pop(event_id, None) is not None:
                answer["retracted"] += 1
        return answer


class _Handler(BaseHTTPRequestHandler):
    fake: FakeServer

    def log_message(self, *args: Any) -> None:
        pass

    def _reply(self, status: int, body: Any = None) -> None:
        data = b"" if body is None else json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        if status in (429, 503):
            self.send_header("Retry-After", "0")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _body(self) -> Any:
        raw = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        if self.headers.get("Content-Encoding") == "gzip":
            raw = gzip.decompress(raw)
        self.fake.bodies.append(raw)
        # This request's own body: with two batches in flight, `bodies[-1]` may be the other's.
        self.raw_body = raw
        return json.loads(raw or b"{}")

    def _device_ok(self) -> bool:
        if self.headers.get("Authorization") != f"Bearer {self.fake.secret}" or self.fake.revoked:
            self._reply(401, {"error": "invalid_device_secret", "detail": "unknown or revoked"})
            return False
        return True

    def do_POST(self) -> None:
        fake = self.fake
        body = self._body()
        if fake.fail_next:
            status = fake.fail_next.pop(0)
            self._reply(status, {"error": "test", "detail": f"told to answer {status}"})
            return
        credentials = {
            "device_id": "0b5c-device",
            "device_secret": fake.secret,
            "organization": {"slug": "acme", "name": "Acme"},
            "name": body.get("name", ""),
        }
        refusal = {"error": "device_limit_reached", "detail": fake.link_refusal}
        if self.path == "/api/v1/devices/enroll":
            if body.get("enroll_key") != "cte_good":
                self._reply(401, {"error": "invalid_enroll_key", "detail": "unknown key"})
            elif fake.link_refusal:
                self._reply(403, refusal)
            else:
                self._reply(201, credentials)
        elif self.path == "/api/v1/device/code":
            self._reply(
                200,
                {
                    "device_code": "dc-1",
                    "user_code": "WDJBMJHT",
                    "verification_uri": f"{fake.url}/device/",
                    "verification_uri_complete": f"{fake.url}/device/?user_code=WDJBMJHT",
                    "expires_in": 900,
                    "interval": fake.interval,
                },
            )
        elif self.path == "/api/v1/device/token":
            fake.polls += 1
            if fake.polls == 1 and fake.slow_down_first:
                self._reply(400, {"error": "slow_down", "detail": "slow down"})
            elif fake.polls < fake.approve_after:
                self._reply(400, {"error": "authorization_pending", "detail": "waiting"})
            elif fake.link_refusal:
                self._reply(403, refusal)
            else:
                self._reply(200, credentials)
        elif self.path == "/api/v1/ingest":
            fake.ingested.append(self.raw_body)
            if self._device_ok():
                self._reply(200, fake.ingest(body))
        else:
            self._reply(404, {"error": "not_found", "detail": self.path})

    def do_GET(self) -> None:
        if self.path.startswith("/api/v1/stats") and self._device_ok():
            self._reply(200, {"device": {"id": "0b5c-device"}, "totals": self.fake.totals()})

    def do_DELETE(self) -> None:
        if self.path == "/api/v1/device" and self._device_ok():
            self.fake.revoked = True
            self._reply(204)


def fake_server_start() -> tuple[FakeServer, ThreadingHTTPServer]:
    fake = FakeServer()
    handler = type("Handler", (_Handler,), {"fake": fake})
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    fake.url = f"http://127.0.0.1:{httpd.server_address[1]}"
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    return fake, httpd
