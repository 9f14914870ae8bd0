"""Time zones as ClawTrace takes them everywhere (the config, --timezone, the local API): an IANA
name, or a fixed UTC offset such as +05:30; none means the machine's own zone."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta, timezone, tzinfo
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError


class UnknownZone(ValueError):
    """Neither an IANA zone nor a UTC offset."""


def zone_resolve(name: str | tzinfo | None) -> tzinfo:
    """A timezone from an IANA name (or UTC offset like +05:30); None means the system zone."""
    if isinstance(name, tzinfo):
        return name
    if name:
        try:
            return ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError):
            offset = _parse_offset(name)
            if offset is None:
                raise UnknownZone(
                    f"unknown zone {name!r} (an IANA name such as Europe/Paris, or an offset "
                    "such as +05:30)"
                ) from None
            return timezone(offset)
    return system_zone()


def _parse_offset(text: str) -> timedelta | None:
    t = text.strip().upper().removeprefix("UTC")
    if not t or t[0] not in "+-":
        return None
    sign = -1 if t[0] == "-" else 1
    parts = t[1:].split(":")
    try:
        hours = int(parts[0])
        minutes = int(parts[1]) if len(parts) > 1 else 0
    except ValueError:
        return None
    if hours > 14 or minutes >= 60:
        return None
    return sign * timedelta(hours=hours, minutes=minutes)


def system_zone() -> tzinfo:
    """The machine's IANA zone (DST-aware), from $TZ or /etc/localtime; UTC when unknown."""
    env = os.environ.get("TZ", "").lstrip(":")
    if env:
        try:
            return ZoneInfo(env)
        except (ZoneInfoNotFoundError, ValueError):
            pass
    try:
        target = os.path.realpath("/etc/localtime")
        if "zoneinfo/" in target:
            return ZoneInfo(target.split("zoneinfo/", 1)[1])
    except (OSError, ZoneInfoNotFoundError, ValueError):
        pass
    try:
        name = Path("/etc/timezone").read_text().strip()
        if name:
            return ZoneInfo(name)
    except (OSError, ZoneInfoNotFoundError, ValueError):
        pass
    local = datetime.now().astimezone().tzinfo
    return local if local is not None else UTC
