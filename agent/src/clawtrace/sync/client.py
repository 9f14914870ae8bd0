"""The only code of the agent that talks to a ClawTrace server (docs/sync-protocol.md).

TLS is verified; plain http is refused unless the server is on this machine (a loopback
address), so a secret or a batch never crosses a network in clear. Every ingest body sent is
appended to the egress log first.
"""

from __future__ import annotations

import gzip
import ipaddress
import platform
import random
import socket
import time
from collections.abc import Callable
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import orjson

from clawtrace import __version__
from clawtrace.paths import home_dir

EGRESS_LOG = "egress.log"
EGRESS_MAX_BYTES = 64 << 20  # then egress.log.1 takes over (one generation kept)
USER_AGENT = f"clawtrace/{__version__}"
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
DEVICE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"
# A batch's JSON shrinks about 12x at level 1 and 14x at 3 or 6; on one machine the cycles
# matter more than the bytes, over a network the bytes (bench/README.md, bench/sync.py).
GZIP_LEVEL = 3


class SyncError(Exception):
    """The server refused, or could not be reached after every retry; says which."""

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        code: str | None = None,
        detail: str = "",
    ):
        super().__init__(message)
        self.status = status
        self.code = code
        # The server's own sentence (the error body's `detail`), for refusals worth printing
        # as they are.
        self.detail = detail


def server_url(url: str) -> str:
    """`url` as a base URL, or a SyncError when it would send anything in clear."""
    parts = urlsplit(url.strip())
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise SyncError(f"{url!r} is not a server URL (https://host[:port])")
    if parts.scheme == "http" and not _loopback(parts.hostname):
        raise SyncError(
            f"refusing plain http to {parts.hostname}: use https (plain http is only for a "
            "server on this machine, such as http://127.0.0.1:8000)"
        )
    return f"{parts.scheme}://{parts.netloc}{parts.path.rstrip('/')}"


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def machine() -> dict[str, str]:
    """What the site shows the member who approves this machine."""
    return {
        "name": socket.gethostname()[:100] or "this machine",
        "os": f"{platform.system()} {platform.release()} {platform.machine()}"[:100],
        "agent_version": __version__,
    }


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("Retry-After")
    if not value:
        return None
    try:
        return max(float(value), 0.0)
    except ValueError:
        pass
    try:
        return max((parsedate_to_datetime(value) - datetime.now(UTC)).total_seconds(), 0.0)
    except (TypeError, ValueError):
        return None


def _error_of(response: httpx.Response) -> tuple[str, str]:
    try:
        body = response.json()
        return str(body.get("error", "")), str(body.get("detail", "")) or response.text[:200]
    except ValueError:
        return "", response.text[:200]


class Client:
    def __init__(
        self,
        server: str,
        secret: str | None = None,
        *,
        attempts: int = 8,
        backoff_base: float = 0.5,
        backoff_cap: float = 30.0,
        sleep: Callable[[float], None] = time.sleep,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.server = server_url(server)
        self.secret = secret
        self.attempts = attempts
        self.backoff_base = backoff_base
        self.backoff_cap = backoff_cap
        self.sleep = sleep
        headers = {"User-Agent": USER_AGENT, "Accept": "application/json"}
        self._http = httpx.Client(
            base_url=self.server,
            headers=headers,
            timeout=httpx.Timeout(30.0, connect=10.0),
            verify=True,
            transport=transport,
            follow_redirects=False,
        )

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- requests --------------------------------------------------------------------------------

    def _auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.secret}"} if self.secret else {}

    def request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        content: bytes | None = None,
        headers: dict[str, str] | None = None,
        retry: bool = True,
        params: dict[str, str] | None = None,
    ) -> httpx.Response:
        """One call, retried on a lost connection, 429 and 5xx with exponential backoff and
        full jitter (at least what Retry-After asks); any other 4xx is raised at once."""
        all_headers = {**self._auth(), **(headers or {})}
        for attempt in range(self.attempts if retry else 1):
            wait: float | None = None
            try:
                response = self._http.request(
                    method, path, json=json, content=content, headers=all_headers, params=params
                )
            except httpx.TransportError as exc:
                last = SyncError(f"cannot reach {self.server}: {exc.__class__.__name__}: {exc}")
            else:
                if response.status_code < 400:
                    return response
                code, detail = _error_of(response)
                last = SyncError(
                    f"the server answered {response.status_code}"
                    f"{f' ({code})' if code else ''}: {detail}",
                    status=response.status_code,
                    code=code,
                    detail=detail,
                )
                if response.status_code not in RETRY_STATUSES:
                    raise last
                wait = _retry_after(response)
            if attempt + 1 >= (self.attempts if retry else 1):
                break
            jitter = random.uniform(0, min(self.backoff_cap, self.backoff_base * 2**attempt))  # noqa: S311  (jitter, not a secret)
            self.sleep(max(jitter, wait or 0.0))
        raise last

    # -- linking ---------------------------------------------------------------------------------

    def device_code(self, info: dict[str, str]) -> dict[str, Any]:
        return self.request("POST", "/api/v1/device/code", json=info).json()

    def device_token(self, device_code: str) -> tuple[str, dict[str, Any]]:
        """('ok', credentials) or (RFC 8628 error code, {})."""
        body = {"grant_type": DEVICE_GRANT, "device_code": device_code}
        try:
            return "ok", self.request("POST", "/api/v1/device/token", json=body).json()
        except SyncError as exc:
            if exc.status == 400 and exc.code in (
                "authorization_pending",
                "slow_down",
                "access_denied",
                "expired_token",
            ):
                return exc.code, {}
            raise

    def enroll(self, key: str, info: dict[str, str]) -> dict[str, Any]:
        return self.request(
            "POST", "/api/v1/devices/enroll", json={"enroll_key": key, **info}
        ).json()

    def revoke(self) -> None:
        self.request("DELETE", "/api/v1/device")

    def stats(self, scope: str | None = None) -> dict[str, Any]:
        params = {"scope": scope} if scope else None
        return self.request("GET", "/api/v1/stats", params=params).json()

    # -- ingest ----------------------------------------------------------------------------------

    def ingest(self, body: bytes, egress: Path | None = None) -> dict[str, Any]:
        self.egress(body, egress)
        return self.ingest_post(body)

    def egress(self, body: bytes, path: Path | None = None) -> None:
        """Log `body` as sent (before it is: a body in the log may not have arrived, never
        the other way round)."""
        egress_append(path or home_dir() / EGRESS_LOG, self.server, body)

    def ingest_post(self, body: bytes) -> dict[str, Any]:
        """POST a body already in the egress log. Safe from several threads at once (httpx's
        client is): each takes a kept-alive connection of its own."""
        packed = gzip.compress(body, compresslevel=GZIP_LEVEL, mtime=0)
        headers = {"Content-Type": "application/json", "Content-Encoding": "gzip"}
        return self.request("POST", "/api/v1/ingest", content=packed, headers=headers).json()


def egress_append(path: Path, server: str, body: bytes) -> None:
    """One line per batch: when, where to, and the exact JSON (what `sync --log` shows)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        if path.stat().st_size > EGRESS_MAX_BYTES:
            path.replace(path.with_name(path.name + ".1"))
    except FileNotFoundError:
        pass
    line = orjson.dumps(
        {
            "at": datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z"),
            "server": server,
            "bytes": len(body),
            "body": orjson.Fragment(body),
        }
    )
    with open(path, "ab") as fh:
        fh.write(line + b"\n")
