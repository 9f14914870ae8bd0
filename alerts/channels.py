"""How an alert leaves the site: one webhook POST or one e-mail, one attempt each.

Retrying is the delivery task's (Celery's backoff), not this module's, so every attempt is
logged on its own. The webhook body is the agent's (`clawtrace.alerts.channels.webhook_body`:
`text` for Slack, `content` for Discord), so a channel that works for a developer's local agent
works for the team's alerts unchanged.

Webhook URLs are typed in by organization admins and fetched by our workers, which makes them a
server-side request forgery vector. So: https only (plain http to a loopback address only where
`ALERT_WEBHOOK_ALLOW_LOOPBACK_HTTP` is on, i.e. DEBUG and tests); no credentials in the URL; the
host's addresses must be public unless `ALERT_WEBHOOK_ALLOW_PRIVATE_ADDRESSES` says otherwise
(a self-hosted site posting to its own intranet); short timeouts; and redirects are followed
only to the same scheme, host and port (307/308, which keep the POST), never to another host.
The address check resolves the name before httpx does, so a DNS answer that changes in between
could still point elsewhere; the private-address rule narrows the risk, it does not close it.
"""

from __future__ import annotations

import ipaddress
import socket
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urljoin, urlsplit

import httpx
from django.conf import settings
from django.core.mail import EmailMessage

WEBHOOK_URL_MAX_LENGTH = 500
MAX_SAME_HOST_REDIRECTS = 2
LOOPBACK_NAMES = {"localhost", "localhost.localdomain"}
ERROR_MAX_LENGTH = 300


class WebhookUrlError(ValueError):
    """Why a webhook URL may not be used; the message is shown to the admin."""


@dataclass(frozen=True)
class AttemptOutcome:
    succeeded: bool
    # Worth another try later: a timeout, a refused connection, 429 or 5xx. A 4xx, a redirect
    # elsewhere or a refused URL will not get better by waiting.
    retryable: bool
    status_code: int | None = None
    error: str = ""
    duration_ms: int = 0


def webhook_host(url: str) -> str:
    """What members and lists show of a webhook: its host (the whole URL works as a
    credential: whoever has a Slack or Discord webhook URL can post to that channel)."""
    try:
        return (urlsplit(url).hostname or "") if url else ""
    except ValueError:
        return ""


def _is_loopback_host(host: str) -> bool:
    if host.lower() in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def webhook_url_check(url: str) -> str:
    """The URL, stripped, if it may be used as a webhook; else `WebhookUrlError`."""
    url = (url or "").strip()
    if not url:
        raise WebhookUrlError("Enter the webhook's URL.")
    if len(url) > WEBHOOK_URL_MAX_LENGTH:
        raise WebhookUrlError(f"Keep the URL under {WEBHOOK_URL_MAX_LENGTH} characters.")
    if any(character.isspace() or ord(character) < 32 for character in url):
        raise WebhookUrlError("A URL has no spaces or control characters.")
    try:
        parts = urlsplit(url)
        _ = parts.port  # raises on a port that is not a number in range
    except ValueError as error:
        raise WebhookUrlError("That is not a valid URL.") from error
    host = parts.hostname or ""
    if not host:
        raise WebhookUrlError("The URL needs a host, like https://hooks.slack.com/...")
    if parts.username is not None or parts.password is not None:
        raise WebhookUrlError("Leave credentials out of the URL.")
    if parts.scheme == "https":
        return url
    if (
        parts.scheme == "http"
        and settings.ALERT_WEBHOOK_ALLOW_LOOPBACK_HTTP
        and _is_loopback_host(host)
    ):
        return url
    raise WebhookUrlError("Webhook URLs must start with https://.")


def _address_is_allowed(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if ip.is_loopback:
        return settings.ALERT_WEBHOOK_ALLOW_LOOPBACK_HTTP or (
            settings.ALERT_WEBHOOK_ALLOW_PRIVATE_ADDRESSES
        )
    if ip.is_global:
        return True
    return settings.ALERT_WEBHOOK_ALLOW_PRIVATE_ADDRESSES and not (
        ip.is_multicast or ip.is_unspecified
    )


def _host_addresses_check(url: str) -> None:
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError as error:
        raise WebhookUrlError(f"The host does not resolve ({error.__class__.__name__}).") from error
    addresses = {info[4][0] for info in infos}
    refused = sorted(address for address in addresses if not _address_is_allowed(address))
    if refused:
        raise WebhookUrlError("The host resolves to a private or reserved address.")


def _same_origin(first: str, second: str) -> bool:
    a, b = urlsplit(first), urlsplit(second)
    return (a.scheme, a.hostname, a.port) == (b.scheme, b.hostname, b.port)


def _short(error: BaseException) -> str:
    # The class says what happened (ConnectTimeout, ReadTimeout, ConnectError); httpx's
    # messages are short and hold no URL, but cut them anyway: they end up in a log row.
    text = f"{error.__class__.__name__}: {error}".strip().rstrip(":")
    return text[:ERROR_MAX_LENGTH]


def webhook_post(url: str, body: dict[str, Any]) -> AttemptOutcome:
    """POST `body` as JSON to `url` once (plus same-host redirects); never raises."""
    started = time.monotonic()

    def done(**kwargs: Any) -> AttemptOutcome:
        return AttemptOutcome(duration_ms=int((time.monotonic() - started) * 1000), **kwargs)

    try:
        url = webhook_url_check(url)
        _host_addresses_check(url)
    except WebhookUrlError as error:
        return done(succeeded=False, retryable=False, error=str(error)[:ERROR_MAX_LENGTH])
    timeout = httpx.Timeout(
        settings.ALERT_WEBHOOK_TIMEOUT_SECONDS,
        connect=settings.ALERT_WEBHOOK_CONNECT_TIMEOUT_SECONDS,
    )
    headers = {"User-Agent": "ClawTrace-Alerts/1"}
    try:
        # trust_env=False: no proxy or .netrc from the worker's environment decides where an
        # organization's URL goes (or adds credentials to it).
        with httpx.Client(timeout=timeout, follow_redirects=False, trust_env=False) as client:
            target = url
            for _hop in range(MAX_SAME_HOST_REDIRECTS + 1):
                response = client.post(target, json=body, headers=headers)
                if response.status_code not in (307, 308):
                    break
                location = urljoin(target, response.headers.get("location", ""))
                if not _same_origin(url, location):
                    return done(
                        succeeded=False,
                        retryable=False,
                        status_code=response.status_code,
                        error="Redirect to another host refused.",
                    )
                target = location
    except httpx.HTTPError as error:
        return done(succeeded=False, retryable=True, error=_short(error))
    status = response.status_code
    if 200 <= status < 300:
        return done(succeeded=True, retryable=False, status_code=status)
    if 300 <= status < 400:
        return done(
            succeeded=False, retryable=False, status_code=status, error="Redirect not followed."
        )
    return done(
        succeeded=False,
        retryable=status == 429 or status >= 500,
        status_code=status,
        error=f"HTTP {status}",
    )


def email_send(*, subject: str, body: str, to: Sequence[str]) -> AttemptOutcome:
    """One message to all recipients through Django's mail backend; never raises."""
    started = time.monotonic()
    message = EmailMessage(subject=subject, body=body, to=list(to))
    try:
        message.send(fail_silently=False)
    except Exception as error:  # smtplib's, socket's, or a third-party backend's own
        # The class only: SMTP errors quote the refused addresses, which stay out of the log.
        return AttemptOutcome(
            succeeded=False,
            retryable=True,
            error=error.__class__.__name__,
            duration_ms=int((time.monotonic() - started) * 1000),
        )
    return AttemptOutcome(
        succeeded=True, retryable=False, duration_ms=int((time.monotonic() - started) * 1000)
    )
