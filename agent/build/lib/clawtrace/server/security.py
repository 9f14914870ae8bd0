"""Local-API defences: Host-header check against DNS rebinding, bearer tokens for writes.

A page on any website can make the browser send requests to 127.0.0.1; DNS rebinding even makes
them same-origin. What it cannot forge is the Host header, which then names the attacker's
domain, so every request whose Host is not our own address is refused before routing.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import os
import secrets
from pathlib import Path

import orjson
from starlette.types import ASGIApp, Receive, Scope, Send

LOOPBACK_NAMES = ("127.0.0.1", "localhost")


def allowed_hosts(port: int, extra: tuple[str, ...] = ()) -> frozenset[str]:
    hosts = {f"{name}:{port}" for name in LOOPBACK_NAMES}
    hosts.update(extra)
    return frozenset(h.lower() for h in hosts)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class HostCheckMiddleware:
    """Answer 421 (JSON) to any HTTP request whose Host header is not one we serve as."""

    def __init__(self, app: ASGIApp, hosts: frozenset[str]) -> None:
        self.app = app
        self.hosts = hosts

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        host = ""
        for name, value in scope.get("headers", ()):
            if name == b"host":
                host = value.decode("latin-1").lower()
                break
        if host in self.hosts:
            await self.app(scope, receive, send)
            return
        body = orjson.dumps(
            {
                "error": "misdirected request: the Host header must name this server "
                "(127.0.0.1 or localhost with its port)",
                "parameter": "Host",
            }
        )
        await send(
            {
                "type": "http.response.start",
                "status": 421,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def token_matches(presented: str | None, expected_hash: str | None) -> bool:
    """Constant-time comparison of a presented bearer token with the stored hash."""
    if not presented or not expected_hash:
        return False
    return hmac.compare_digest(token_hash(presented), expected_hash)


def bearer_from_header(value: str | None) -> str | None:
    if not value:
        return None
    scheme, _, token = value.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


def local_token_ensure(home: Path) -> str:
    """The local API token, generated into `<home>/api-token` (mode 0600) on first use.

    Local clients (the menu bar app, `curl`) read it from there, as Jupyter's token file works;
    the server keeps only its hash in memory and compares in constant time.
    """
    home.mkdir(parents=True, exist_ok=True)
    path = home / "api-token"
    if path.exists():
        return path.read_text().strip()
    token = secrets.token_urlsafe(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(token + "\n")
    return token
