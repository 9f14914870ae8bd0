"""The `[alerts]` section of the config file: rules and channels, validated with line and key.

[alerts]
daily_budget_usd = 10.0        # today's spend (local day); 0 turns a rule off
session_spike_usd = 5.0        # one session's spend
hourly_burn_usd = 3.0          # spend over the last 60 minutes
hourly_requests = 400          # assistant turns over the last 60 minutes
hourly_tokens = 30000000       # tokens (cache included) over the last 60 minutes
monthly_budget_usd = 0.0       # 0 = no monthly budget
monthly_warn_percent = [50, 80, 100]
anomaly = true                 # hour-of-week baseline (unusual for you, under the limits)
runaway = true                 # runaway-session detector

[alerts.desktop]
enabled = true

[alerts.webhook]               # Slack and Discord incoming webhooks both accept the body
url = "https://hooks.slack.com/services/..."
timeout_seconds = 5
retries = 3

[alerts.email]
host = "smtp.example.com"
port = 587
starttls = true
username = "me@example.com"
password_env = "CLAWTRACE_SMTP_PASSWORD"   # the password is read from this variable
from = "clawtrace@example.com"
to = ["me@example.com"]
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from clawtrace.config import CONFIG_MAX_BYTES, Config, ConfigError, _line_of
from clawtrace.fileio import read_regular_text

DEFAULTS: dict[str, float] = {
    "daily_budget_usd": 10.0,
    "session_spike_usd": 5.0,
    "hourly_burn_usd": 3.0,
    "hourly_requests": 400,
    "hourly_tokens": 30_000_000,
    "monthly_budget_usd": 0.0,
}


@dataclass(frozen=True)
class WebhookSettings:
    url: str
    timeout_seconds: float = 5.0
    retries: int = 3


@dataclass(frozen=True)
class EmailSettings:
    host: str
    port: int
    sender: str
    to: tuple[str, ...]
    starttls: bool = True
    ssl: bool = False
    username: str | None = None
    password_env: str | None = None
    timeout_seconds: float = 10.0


@dataclass(frozen=True)
class AlertSettings:
    daily_budget_usd: float = DEFAULTS["daily_budget_usd"]
    session_spike_usd: float = DEFAULTS["session_spike_usd"]
    hourly_burn_usd: float = DEFAULTS["hourly_burn_usd"]
    hourly_requests: int = int(DEFAULTS["hourly_requests"])
    hourly_tokens: int = int(DEFAULTS["hourly_tokens"])
    monthly_budget_usd: float = DEFAULTS["monthly_budget_usd"]
    monthly_warn_percent: tuple[int, ...] = (50, 80, 100)
    anomaly: bool = True
    runaway: bool = True
    desktop: bool = True
    webhook: WebhookSettings | None = None
    email: EmailSettings | None = None
    extra: dict[str, Any] = field(default_factory=dict)


class _Checker:
    def __init__(self, path: Path | None) -> None:
        self.path = path
        self.text = ""
        if path is not None and path.exists():
            try:
                self.text = read_regular_text(path, max_bytes=CONFIG_MAX_BYTES)
            except (OSError, UnicodeDecodeError):
                self.text = ""

    def error(self, section: str, key: str, problem: str) -> ConfigError:
        line = _line_of(self.text, section, key)
        where = str(self.path) if self.path else "config"
        at = f" line {line}" if line else ""
        return ConfigError(f"{where}:{at} key '{section}.{key}': {problem}")

    def number(self, table: dict, section: str, key: str, default: float, integer: bool = False):
        value = table.get(key, default)
        if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
            kind = "a whole number" if integer else "a number"
            raise self.error(section, key, f"must be {kind} >= 0 (0 turns the rule off)")
        if isinstance(value, float) and not math.isfinite(value):
            raise self.error(section, key, "must be a finite number")
        if integer and not float(value).is_integer():
            raise self.error(section, key, "must be a whole number")
        return int(value) if integer else float(value)

    def boolean(self, table: dict, section: str, key: str, default: bool) -> bool:
        value = table.get(key, default)
        if not isinstance(value, bool):
            raise self.error(section, key, "must be true or false")
        return value

    def string(self, table: dict, section: str, key: str, required: bool = False) -> str | None:
        value = table.get(key)
        if value is None:
            if required:
                raise self.error(section, key, "is required")
            return None
        if not isinstance(value, str) or not value.strip():
            raise self.error(section, key, "must be a non-empty string")
        return value.strip()

    def table(self, parent: dict, section: str, key: str) -> dict | None:
        value = parent.get(key)
        if value is None:
            return None
        if not isinstance(value, dict):
            raise self.error(section, key, f"must be a table ([{section}.{key}])")
        return value


_RULE_KEYS = {
    *DEFAULTS,
    "monthly_warn_percent",
    "anomaly",
    "runaway",
    "desktop",
    "webhook",
    "email",
}


def alert_settings_load(cfg: Config) -> AlertSettings:
    """Validate `[alerts]` from an already loaded config; errors name the line and key."""
    check = _Checker(cfg.path)
    section = cfg.raw.get("alerts", {})
    if not isinstance(section, dict):
        raise ConfigError(f"{cfg.path or 'config'}: key 'alerts': must be a table ([alerts])")
    unknown = sorted(set(section) - _RULE_KEYS)
    if unknown:
        raise check.error(
            "alerts", unknown[0], f"is not an alert setting ({', '.join(sorted(_RULE_KEYS))})"
        )
    values: dict[str, Any] = {}
    for key, default in DEFAULTS.items():
        integer = key in ("hourly_requests", "hourly_tokens")
        values[key] = check.number(section, "alerts", key, default, integer=integer)
    warn = section.get("monthly_warn_percent", [50, 80, 100])
    if (
        not isinstance(warn, list)
        or not warn
        or not all(isinstance(p, int) and not isinstance(p, bool) and 1 <= p <= 1000 for p in warn)
    ):
        raise check.error(
            "alerts",
            "monthly_warn_percent",
            "must be a list of whole percentages, e.g. [50, 80, 100]",
        )
    values["monthly_warn_percent"] = tuple(sorted(set(warn)))
    values["anomaly"] = check.boolean(section, "alerts", "anomaly", True)
    values["runaway"] = check.boolean(section, "alerts", "runaway", True)

    desktop = section.get("desktop", {})
    if isinstance(desktop, bool):
        values["desktop"] = desktop
    else:
        table = check.table(section, "alerts", "desktop") or {}
        values["desktop"] = check.boolean(table, "alerts.desktop", "enabled", True)

    hook = check.table(section, "alerts", "webhook")
    if hook is not None:
        url = check.string(hook, "alerts.webhook", "url", required=True)
        if not url.startswith(("https://", "http://")):
            raise check.error("alerts.webhook", "url", "must start with https:// (or http://)")
        values["webhook"] = WebhookSettings(
            url=url,
            timeout_seconds=check.number(hook, "alerts.webhook", "timeout_seconds", 5.0) or 5.0,
            retries=check.number(hook, "alerts.webhook", "retries", 3, integer=True),
        )

    mail = check.table(section, "alerts", "email")
    if mail is not None:
        s = "alerts.email"
        to = mail.get("to")
        if isinstance(to, str):
            to = [to]
        if (
            not isinstance(to, list)
            or not to
            or not all(isinstance(a, str) and "@" in a for a in to)
        ):
            raise check.error(s, "to", "must be an e-mail address or a list of them")
        sender = check.string(mail, s, "from", required=True)
        if "@" not in sender:
            raise check.error(s, "from", "must be an e-mail address")
        if "password" in mail:
            raise check.error(
                s,
                "password",
                "do not put the password in the file: set password_env to the "
                "name of an environment variable holding it",
            )
        port = check.number(mail, s, "port", 587, integer=True)
        if not 1 <= port <= 65535:
            raise check.error(s, "port", "must be a TCP port (1-65535)")
        values["email"] = EmailSettings(
            host=check.string(mail, s, "host", required=True),
            port=port,
            sender=sender,
            to=tuple(to),
            starttls=check.boolean(mail, s, "starttls", True),
            ssl=check.boolean(mail, s, "ssl", False),
            username=check.string(mail, s, "username"),
            password_env=check.string(mail, s, "password_env"),
            timeout_seconds=check.number(mail, s, "timeout_seconds", 10.0) or 10.0,
        )
    return AlertSettings(**values)
