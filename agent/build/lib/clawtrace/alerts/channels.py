"""Where alerts go: a desktop notification, a webhook (Slack/Discord), e-mail over SMTP.

Each channel returns a `ChannelResult` rather than raising: a dead webhook must never stop the
others, nor the scan that found the alert. What an alert carries is metadata only (amounts,
project and session names, rule names), never message text.
"""

from __future__ import annotations

import os
import platform
import shutil
import smtplib
import ssl
import subprocess
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from email.message import EmailMessage
from typing import Any

from clawtrace.alerts.settings import AlertSettings, EmailSettings, WebhookSettings


@dataclass(frozen=True)
class Alert:
    rule: str
    window_key: str
    severity: str  # info | warning | critical
    title: str
    message: str
    details: dict[str, Any] = field(default_factory=dict)


@dataclass
class ChannelResult:
    channel: str
    ok: bool
    skipped: bool = False
    attempts: int = 0
    error: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


# --- desktop ----------------------------------------------------------------------------------


def _applescript_quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def desktop_send(
    alert: Alert,
    which: Callable[[str], str | None] = shutil.which,
    system: str | None = None,
    run: Callable[..., Any] = subprocess.run,
) -> ChannelResult:
    """notify-send on Linux, osascript on macOS; skipped quietly where neither exists."""
    system = system or platform.system()
    if system == "Darwin" and which("osascript"):
        script = (
            f"display notification {_applescript_quote(alert.message)} "
            f"with title {_applescript_quote('ClawTrace')} "
            f"subtitle {_applescript_quote(alert.title)}"
        )
        command = ["osascript", "-e", script]
    elif which("notify-send"):
        urgency = "critical" if alert.severity == "critical" else "normal"
        command = [
            "notify-send",
            "--app-name=ClawTrace",
            f"--urgency={urgency}",
            alert.title,
            alert.message,
        ]
    else:
        return ChannelResult("desktop", ok=False, skipped=True, error="no notifier on this system")
    try:
        done = run(command, capture_output=True, timeout=10, check=False)
    except (OSError, subprocess.SubprocessError) as exc:
        return ChannelResult("desktop", ok=False, attempts=1, error=str(exc))
    if done.returncode != 0:
        # No desktop session (e.g. over SSH): not an error worth more than a note.
        return ChannelResult(
            "desktop", ok=False, attempts=1, error=f"exit status {done.returncode}"
        )
    return ChannelResult("desktop", ok=True, attempts=1)


# --- webhook ----------------------------------------------------------------------------------


def webhook_body(alert: Alert) -> dict[str, Any]:
    """One JSON body both Slack (`text`) and Discord (`content`) incoming webhooks accept."""
    line = f"*{alert.title}*\n{alert.message}"
    return {
        "text": line,
        "content": line.replace("*", "**"),
        "username": "ClawTrace",
        "clawtrace": {
            "rule": alert.rule,
            "window": alert.window_key,
            "severity": alert.severity,
            "details": alert.details,
        },
    }


def webhook_send(
    alert: Alert,
    settings: WebhookSettings,
    sleep: Callable[[float], None] = time.sleep,
    backoff_base: float = 0.5,
) -> ChannelResult:
    """POST the alert; retry timeouts, connection errors, 429 and 5xx with exponential backoff."""
    import httpx

    attempts = 0
    last_error = ""
    body = webhook_body(alert)
    with httpx.Client(timeout=settings.timeout_seconds, follow_redirects=False) as client:
        for attempt in range(settings.retries + 1):
            attempts += 1
            try:
                response = client.post(settings.url, json=body)
            except httpx.HTTPError as exc:
                last_error = f"{exc.__class__.__name__}: {exc}"
            else:
                if response.status_code < 300:
                    return ChannelResult("webhook", ok=True, attempts=attempts)
                last_error = f"HTTP {response.status_code}"
                if response.status_code < 500 and response.status_code != 429:
                    break  # the request itself is wrong: retrying will not help
            if attempt < settings.retries:
                sleep(min(backoff_base * 2**attempt, 30.0))
    return ChannelResult("webhook", ok=False, attempts=attempts, error=last_error)


# --- e-mail -----------------------------------------------------------------------------------


def email_send(alert: Alert, settings: EmailSettings) -> ChannelResult:
    msg = EmailMessage()
    msg["Subject"] = f"[ClawTrace] {alert.title}"
    msg["From"] = settings.sender
    msg["To"] = ", ".join(settings.to)
    msg.set_content(f"{alert.message}\n\nRule: {alert.rule} ({alert.window_key})\n")
    password = os.environ.get(settings.password_env) if settings.password_env else None
    try:
        if settings.ssl:
            smtp: smtplib.SMTP = smtplib.SMTP_SSL(
                settings.host,
                settings.port,
                timeout=settings.timeout_seconds,
                context=ssl.create_default_context(),
            )
        else:
            smtp = smtplib.SMTP(settings.host, settings.port, timeout=settings.timeout_seconds)
        with smtp:
            if settings.starttls and not settings.ssl:
                smtp.starttls(context=ssl.create_default_context())
            if settings.username and password:
                smtp.login(settings.username, password)
            smtp.send_message(msg)
    except (OSError, smtplib.SMTPException) as exc:
        return ChannelResult(
            "email", ok=False, attempts=1, error=f"{exc.__class__.__name__}: {exc}"
        )
    return ChannelResult("email", ok=True, attempts=1)


# --- all channels -----------------------------------------------------------------------------


def channels_send(
    alert: Alert,
    settings: AlertSettings,
    sleep: Callable[[float], None] = time.sleep,
    desktop: Callable[[Alert], ChannelResult] = desktop_send,
) -> list[ChannelResult]:
    results = []
    if settings.desktop:
        results.append(desktop(alert))
    if settings.webhook is not None:
        results.append(webhook_send(alert, settings.webhook, sleep=sleep))
    if settings.email is not None:
        results.append(email_send(alert, settings.email))
    return results
