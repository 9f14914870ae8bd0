"""The user's config file (`<home>/config.toml`), loaded with tomllib.

Sections ClawTrace core reads: `[general]`, `[sources]`, `[prices.<name>]` (price overrides) and
`[providers.<id>]` (negotiated multipliers, free local runtimes). Every other top-level section
(`[alerts]`, `[server]`, `[sync]`...) is kept untouched in `Config.raw` for the modules that own
it. A broken file or a bad value raises `ConfigError` naming the line and the key.

Example:

    [general]
    cost_mode = "auto"            # auto | calculate | display
    timezone = "Europe/Paris"     # default: the system zone

    [sources]
    claude_dirs = ["~/.claude"]
    openclaw_dirs = ["~/.openclaw"]

    [prices.my-finetune]
    provider = "openai"           # optional; "*" or absent matches any provider
    model = "ft:gpt-5-mini*"      # exact, prefix* or glob
    input = 0.30                  # USD per million tokens
    output = 1.20
    cache_read = 0.03

    [providers.openrouter]
    multiplier = 0.95
"""

from __future__ import annotations

import math
import re
import tomllib
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

from clawtrace import rules
from clawtrace.fileio import read_regular_text
from clawtrace.paths import expand_dir
from clawtrace.sources import SOURCES
from clawtrace.zones import UnknownZone, zone_resolve

# A config file is a few hundred bytes; anything near this is not one.
CONFIG_MAX_BYTES = 1 << 20

COST_MODES = ("auto", "calculate", "display")
_PRICE_FIELDS = (
    "input",
    "output",
    "cache_read",
    "cache_write_5m",
    "cache_write_1h",
    "web_search_per_1k",
)


class ConfigError(ValueError):
    """The config file cannot be used; the message names the file, line and key."""


@dataclass(frozen=True)
class PriceTier:
    above: int
    prices: dict[str, float]


@dataclass(frozen=True)
class PriceOverride:
    name: str
    model: str
    provider: str | None
    prices: dict[str, float]
    tiers: tuple[PriceTier, ...] = ()
    valid_from: date | None = None
    valid_to: date | None = None
    free: bool = False


@dataclass
class Config:
    path: Path | None = None
    cost_mode: str = "auto"
    timezone: str | None = None
    # `[sources]`: each source's directories by Source.dirs_key (those the file sets).
    source_dirs: dict[str, list[str]] = field(default_factory=dict)
    workers: int | None = None
    price_overrides: list[PriceOverride] = field(default_factory=list)
    provider_multipliers: dict[str, float] = field(default_factory=dict)
    free_providers: set[str] = field(default_factory=set)
    raw: dict[str, Any] = field(default_factory=dict)
    # Settings nobody reads (a misspelt key, a key in the wrong table): each names its line and
    # what was meant, and is printed once by the command that loaded the file.
    warnings: list[str] = field(default_factory=list)


# The settings each table holds (`prices` and `alerts` check their own keys, and refuse others).
KNOWN_KEYS: dict[str, frozenset[str]] = {
    "general": frozenset({"cost_mode", "timezone", "workers"}),
    "sources": frozenset(s.dirs_key for s in SOURCES.values()),
    "providers.*": frozenset({"multiplier", "free"}),
    "server": frozenset({"token"}),
    "privacy": frozenset({"project_names", "git_branches", "salt"}),
    "sync": frozenset({"auto"}),
}
PRIVACY_CHOICES = ("name", "hash", "omit", "path")
_OWN_CHECKS = frozenset({"prices", "alerts"})  # (tables validated where they are read)


def _known_dotted() -> list[str]:
    return [f"{t}.{k}" for t, keys in KNOWN_KEYS.items() for k in sorted(keys)]


def _suggest(dotted: str) -> str:
    """`did you mean ...` for an unknown key, from the known ones (by the key's last part
    first: `cost_mode` at the top means `general.cost_mode`)."""
    import difflib

    known = _known_dotted()
    leaf = dotted.rsplit(".", 1)[-1]
    same_leaf = [k for k in known if k.rsplit(".", 1)[-1] == leaf]
    close = same_leaf or difflib.get_close_matches(dotted, known, n=1, cutoff=0.6)
    if not close:
        close = [
            k for k in known if difflib.get_close_matches(leaf, [k.rsplit(".", 1)[-1]], cutoff=0.7)
        ]
    return f" (did you mean '{close[0]}'?)" if close else ""


def _unknown_keys(data: dict[str, Any]) -> list[tuple[str | None, str]]:
    """(table, key) of every setting nobody reads."""
    found: list[tuple[str | None, str]] = []
    for key, value in data.items():
        if key in _OWN_CHECKS:
            continue
        if key == "providers" and isinstance(value, dict):
            for pid, entry in value.items():
                if isinstance(entry, dict):
                    table = f"providers.{pid}"
                    found += [(table, k) for k in entry if k not in KNOWN_KEYS["providers.*"]]
            continue
        if key not in KNOWN_KEYS:
            found.append((None, key))
        elif isinstance(value, dict):
            found += [(key, k) for k in value if k not in KNOWN_KEYS[key]]
    return found


def _warnings(data: dict[str, Any], text: str, path: Path | None) -> list[str]:
    out = []
    for table, key in _unknown_keys(data):
        dotted = f"{table}.{key}" if table else key
        line = _line_of(text, table, key)
        where = f"{path}" if path else "config"
        at = f" line {line}" if line else ""
        out.append(f"{where}:{at} key '{dotted}': unknown setting, ignored{_suggest(dotted)}")
    return out


def _line_of(text: str, section: str | None, key: str | None) -> int | None:
    """1-based line where `key` is set inside `[section]` (or the section header itself)."""
    lines = text.splitlines()
    in_section = section is None
    header_line = None
    for number, line in enumerate(lines, start=1):
        stripped = line.strip()
        if stripped.startswith("["):
            name = stripped.strip("[]").strip()
            in_section = section is not None and name == section
            if in_section:
                header_line = number
            continue
        if in_section and key is not None and re.match(rf"^\s*\"?{re.escape(key)}\"?\s*=", line):
            return number
    return header_line


def _err(path: Path | None, text: str, section: str | None, key: str, problem: str) -> ConfigError:
    line = _line_of(text, section, key)
    where = f"{path}" if path else "config"
    full_key = f"{section}.{key}" if section else key
    at = f" line {line}" if line else ""
    return ConfigError(f"{where}:{at} key '{full_key}': {problem}")


def config_load(path: Path | None = None) -> Config:
    """Load the config; a missing file gives the defaults."""
    if path is None:
        from clawtrace.paths import config_path

        path = config_path()
    if not path.exists():
        return Config(path=path)
    try:
        text = read_regular_text(path, max_bytes=CONFIG_MAX_BYTES)
    except (OSError, UnicodeDecodeError) as exc:
        reason = getattr(exc, "strerror", None) or exc.__class__.__name__
        raise ConfigError(f"{path}: cannot read the config file ({reason})") from None
    return config_parse(_toml(text, path), text=text, path=path)


def _toml(text: str, path: Path | None) -> dict[str, Any]:
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        # The decoder's message already says "(at line N, column M)".
        raise ConfigError(f"{path}: invalid TOML: {exc}") from None
    except RecursionError:
        raise ConfigError(
            f"{path}: invalid TOML: arrays or tables nested too deeply to be a config"
        ) from None


def config_parse(data: dict[str, Any], *, text: str = "", path: Path | None = None) -> Config:
    cfg = Config(path=path, raw=data)
    general = data.get("general", {})
    if not isinstance(general, dict):
        raise _err(path, text, None, "general", "must be a table")
    mode = general.get("cost_mode", "auto")
    if mode not in COST_MODES:
        raise _err(
            path,
            text,
            "general",
            "cost_mode",
            f"must be one of {', '.join(COST_MODES)}, not {mode!r}",
        )
    cfg.cost_mode = mode
    tz = general.get("timezone")
    if tz is not None:
        if not isinstance(tz, str):
            raise _err(path, text, "general", "timezone", 'must be a string such as "Europe/Paris"')
        try:
            zone_resolve(tz)  # (the zones --timezone takes: IANA names and +05:30 alike)
        except UnknownZone as exc:
            raise _err(path, text, "general", "timezone", str(exc)) from None
        cfg.timezone = tz
    workers = general.get("workers")
    if workers is not None:
        if not isinstance(workers, int) or isinstance(workers, bool) or not 1 <= workers <= 64:
            raise _err(path, text, "general", "workers", "must be an integer from 1 to 64")
        cfg.workers = workers

    sources = data.get("sources", {})
    if not isinstance(sources, dict):
        raise _err(path, text, None, "sources", "must be a table")
    for key in (s.dirs_key for s in SOURCES.values()):
        value = sources.get(key)
        if value is None:
            continue
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise _err(path, text, "sources", key, "must be a list of directory paths")
        for item in value:
            try:
                expand_dir(item)
            except ValueError as exc:
                raise _err(path, text, "sources", key, str(exc)) from None
        cfg.source_dirs[key] = value

    prices = data.get("prices", {})
    if not isinstance(prices, dict):
        raise _err(path, text, None, "prices", "must be a table of [prices.<name>] tables")
    for name, entry in prices.items():
        cfg.price_overrides.append(_override_parse(name, entry, path, text))

    providers = data.get("providers", {})
    if not isinstance(providers, dict):
        raise _err(path, text, None, "providers", "must be a table of [providers.<id>] tables")
    for pid, entry in providers.items():
        section = f"providers.{pid}"
        if not isinstance(entry, dict):
            raise _err(path, text, "providers", pid, "must be a table")
        if "multiplier" in entry:
            m = entry["multiplier"]
            if not _number(m, rules.MAX_MULTIPLIER):
                raise _err(
                    path,
                    text,
                    section,
                    "multiplier",
                    f"must be a number from 0 to {rules.MAX_MULTIPLIER} (1 is the list price)",
                )
            cfg.provider_multipliers[pid] = float(m)
        if "free" in entry:
            if not isinstance(entry["free"], bool):
                raise _err(path, text, section, "free", "must be true or false")
            if entry["free"]:
                cfg.free_providers.add(pid)
    _sync_tables_check(data, text, path)
    cfg.warnings = _warnings(data, text, path)
    return cfg


def _sync_tables_check(data: dict[str, Any], text: str, path: Path | None) -> None:
    """`[privacy]` and `[sync]`: what the sender may send, checked before anything is sent."""
    for table in ("privacy", "sync"):
        if not isinstance(data.get(table, {}), dict):
            raise _err(path, text, None, table, "must be a table")
    privacy = data.get("privacy", {})
    for key in ("project_names", "git_branches"):
        value = privacy.get(key, "name")
        choices = PRIVACY_CHOICES if key == "project_names" else ("name", "hash", "omit")
        if value not in choices:
            raise _err(path, text, "privacy", key, f"must be one of {', '.join(choices)}")
    if not isinstance(privacy.get("salt", ""), str):
        raise _err(path, text, "privacy", "salt", "must be a string")
    if not isinstance(data.get("sync", {}).get("auto", True), bool):
        raise _err(path, text, "sync", "auto", "must be true or false")


def _number(value: Any, ceiling: float = rules.MAX_PRICE_PER_MILLION) -> bool:
    """A finite number from 0 to `ceiling` (not a bool: TOML's true is not a price)."""
    return (
        not isinstance(value, bool)
        and isinstance(value, int | float)
        and math.isfinite(value)
        and 0 <= value <= ceiling
    )


_PRICE_PROBLEM = (
    f"must be a number from 0 to {rules.MAX_PRICE_PER_MILLION:,} "
    "(USD per million tokens; web_search_per_1k: per thousand searches)"
)


def _override_parse(name: str, entry: Any, path: Path | None, text: str) -> PriceOverride:
    section = f"prices.{name}"
    if not isinstance(entry, dict):
        raise _err(path, text, "prices", name, "must be a table")
    model = entry.get("model", name)
    if not isinstance(model, str) or not model:
        raise _err(path, text, section, "model", "must be a model id or pattern")
    provider = entry.get("provider")
    if provider is not None and not isinstance(provider, str):
        raise _err(path, text, section, "provider", "must be a provider id")
    free = entry.get("free", False)
    if not isinstance(free, bool):
        raise _err(path, text, section, "free", "must be true or false")
    prices: dict[str, float] = {}
    for key in _PRICE_FIELDS:
        if key in entry:
            if not _number(entry[key]):
                raise _err(path, text, section, key, _PRICE_PROBLEM)
            prices[key] = float(entry[key])
    unknown = set(entry) - {
        *_PRICE_FIELDS,
        "model",
        "provider",
        "free",
        "tiers",
        "valid_from",
        "valid_to",
    }
    if unknown:
        key = sorted(unknown)[0]
        raise _err(
            path,
            text,
            section,
            key,
            "is not a price field (input, output, cache_read, "
            "cache_write_5m, cache_write_1h, web_search_per_1k, tiers, valid_from, valid_to, free)",
        )
    if not free and "input" not in prices:
        raise _err(path, text, section, "input", "is required (or set free = true)")
    if not free and "output" not in prices:
        raise _err(path, text, section, "output", "is required (or set free = true)")
    tiers: list[PriceTier] = []
    raw_tiers = entry.get("tiers", [])
    if not isinstance(raw_tiers, list):
        raise _err(
            path, text, section, "tiers", "must be a list of {above = N, input = ...} tables"
        )
    for tier in raw_tiers:
        above = tier.get("above") if isinstance(tier, dict) else None
        if type(above) is not int or not 0 <= above < rules.MAX_TURN_TOKENS:
            raise _err(
                path,
                text,
                section,
                "tiers",
                "each tier needs an integer 'above' (total input tokens, "
                f"below {rules.MAX_TURN_TOKENS:,})",
            )
        for key, value in tier.items():
            if key != "above" and (key not in _PRICE_FIELDS or not _number(value)):
                problem = _PRICE_PROBLEM if key in _PRICE_FIELDS else "is not a price field"
                raise _err(path, text, section, "tiers", f"{key}: {problem}")
        tp = {k: float(v) for k, v in tier.items() if k in _PRICE_FIELDS}
        tiers.append(PriceTier(above=above, prices=tp))
    valid: dict[str, date | None] = {}
    for key in ("valid_from", "valid_to"):
        value = entry.get(key)
        if value is None:
            valid[key] = None
        elif isinstance(value, date):
            valid[key] = value
        elif isinstance(value, str):
            try:
                valid[key] = date.fromisoformat(value)
            except ValueError:
                raise _err(path, text, section, key, "must be a date, YYYY-MM-DD") from None
        else:
            raise _err(path, text, section, key, "must be a date, YYYY-MM-DD")
    return PriceOverride(
        name=name,
        model=model,
        provider=None if provider in (None, "*") else provider,
        prices=prices,
        tiers=tuple(sorted(tiers, key=lambda t: t.above)),
        valid_from=valid["valid_from"],
        valid_to=valid["valid_to"],
        free=free,
    )


def _nested(parts: list[str], value: Any) -> dict[str, Any]:
    """{'a': {'b': value}} for ['a', 'b']."""
    node: Any = value
    for part in reversed(parts):
        node = {part: node}
    return node


def config_set(path: Path, dotted_key: str, value: Any) -> None:
    """Set one key (e.g. `general.cost_mode`), keeping every other section; validated first."""
    import tomli_w

    data: dict[str, Any] = {}
    if path.exists():
        try:
            data = _toml(read_regular_text(path, max_bytes=CONFIG_MAX_BYTES), path)
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"{path}: cannot read the config file ({exc})") from None
    parts = dotted_key.split(".")
    unknown = {f"{t}.{k}" if t else k for t, k in _unknown_keys(_nested(parts, value))}
    if dotted_key in unknown:
        raise ConfigError(f"key '{dotted_key}': no such setting{_suggest(dotted_key)}")
    node = data
    for part in parts[:-1]:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise ConfigError(f"{path}: key '{dotted_key}': '{part}' is not a table")
        node = child
    node[parts[-1]] = value
    checked = config_parse(data, text=tomli_w.dumps(data), path=path)
    if parts[0] == "alerts":
        from clawtrace.alerts.settings import alert_settings_load

        alert_settings_load(checked)
    _write_atomically(path, tomli_w.dumps(data))


def _write_atomically(path: Path, text: str) -> None:
    """A reader never sees half a config, and a home that cannot be written is a ConfigError
    that says so (not a traceback)."""
    import os
    import tempfile

    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".config.", suffix=".toml")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as out:
                out.write(text)
            os.replace(tmp, path)
        except BaseException:
            os.unlink(tmp)
            raise
    except OSError as exc:
        reason = exc.strerror or exc.__class__.__name__
        raise ConfigError(
            f"cannot write {path}: {reason}. Check that this user can write {path.parent}."
        ) from None


def config_load_warned(path: Path | None = None) -> Config:
    """`config_load` for a command line: each unknown key is one `Warning:` line on stderr (a
    misspelt key must not be ignored in silence, nor stop the command)."""
    import sys

    config = config_load(path)
    for warning in config.warnings:
        print(f"Warning: {warning}", file=sys.stderr)
    return config
