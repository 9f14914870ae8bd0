"""Start `clawtrace serve` at login: a systemd user unit on Linux, a launchd agent on macOS.

`clawtrace service install|uninstall|status`. Where the service manager is missing (a container,
WSL without systemd, a minimal VM) the file is still written and the user is told plainly how to
run the server instead; nothing fails with a traceback.
"""

from __future__ import annotations

import os
import platform
import plistlib
import shlex
import shutil
import subprocess
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

UNIT_NAME = "clawtrace.service"
LAUNCHD_LABEL = "dev.clawtrace.agent"

Runner = Callable[[Sequence[str]], subprocess.CompletedProcess]


def _run(args: Sequence[str]) -> subprocess.CompletedProcess:
    return subprocess.run(list(args), capture_output=True, text=True, timeout=30, check=False)


@dataclass
class ServiceEnv:
    """The machine as the service code sees it; tests substitute every part."""

    system: str = field(default_factory=platform.system)
    home: Path = field(default_factory=Path.home)
    environ: dict[str, str] = field(default_factory=lambda: dict(os.environ))
    which: Callable[[str], str | None] = shutil.which
    run: Runner = _run
    uid: int = field(default_factory=lambda: os.getuid() if hasattr(os, "getuid") else 0)


@dataclass
class ServiceReport:
    ok: bool
    path: Path | None
    lines: list[str]


def serve_command(env: ServiceEnv, port: int = 19898) -> list[str]:
    """The absolute command line that starts the server (no PATH lookup at login)."""
    exe = env.which("clawtrace")
    argv0 = Path(sys.argv[0]) if sys.argv and sys.argv[0] else None
    if argv0 is not None and argv0.name == "clawtrace" and argv0.exists():
        exe = str(argv0.resolve())
    base = [exe] if exe else [sys.executable, "-m", "clawtrace.cli"]
    return [*base, "serve", "--host", "127.0.0.1", "--port", str(port)]


def _passthrough_env(env: ServiceEnv) -> dict[str, str]:
    from clawtrace.sources import SOURCES

    keys = ("CLAWTRACE_HOME", *(v for s in SOURCES.values() for v in s.env_vars))
    return {k: env.environ[k] for k in keys if env.environ.get(k)}


# --- systemd ----------------------------------------------------------------------------------


def systemd_unit_path(env: ServiceEnv) -> Path:
    base = env.environ.get("XDG_CONFIG_HOME") or str(env.home / ".config")
    return Path(base) / "systemd" / "user" / UNIT_NAME


def systemd_unit_text(env: ServiceEnv, port: int = 19898) -> str:
    command = " ".join(shlex.quote(part) for part in serve_command(env, port))
    environment = "".join(
        f"Environment={shlex.quote(f'{k}={v}')}\n" for k, v in sorted(_passthrough_env(env).items())
    )
    return (
        "[Unit]\n"
        f"Description=ClawTrace local agent (API and page on 127.0.0.1:{port})\n"
        "\n"
        "[Service]\n"
        "Type=simple\n"
        f"ExecStart={command}\n"
        f"{environment}"
        "Restart=on-failure\n"
        "RestartSec=5\n"
        "NoNewPrivileges=yes\n"
        "\n"
        "[Install]\n"
        "WantedBy=default.target\n"
    )


def _systemd_usable(env: ServiceEnv) -> str | None:
    """None when `systemctl --user` works here, else why not."""
    if env.which("systemctl") is None:
        return "systemd is not installed on this machine (no systemctl)"
    probe = env.run(["systemctl", "--user", "show-environment"])
    if probe.returncode != 0:
        return "systemd has no user session here (systemctl --user does not answer)"
    return None


def _manual_hint(env: ServiceEnv, port: int) -> str:
    command = " ".join(shlex.quote(p) for p in serve_command(env, port))
    return f"Start the server yourself instead, e.g. from your shell profile: {command} &"


# --- launchd ----------------------------------------------------------------------------------


def launchd_plist_path(env: ServiceEnv) -> Path:
    return env.home / "Library" / "LaunchAgents" / f"{LAUNCHD_LABEL}.plist"


def launchd_plist_bytes(env: ServiceEnv, port: int = 19898) -> bytes:
    log_dir = Path(env.environ.get("CLAWTRACE_HOME") or env.home / ".clawtrace")
    data = {
        "Label": LAUNCHD_LABEL,
        "ProgramArguments": serve_command(env, port),
        "RunAtLoad": True,
        "KeepAlive": {"SuccessfulExit": False},
        "ProcessType": "Background",
        "StandardOutPath": str(log_dir / "serve.log"),
        "StandardErrorPath": str(log_dir / "serve.log"),
    }
    passthrough = _passthrough_env(env)
    if passthrough:
        data["EnvironmentVariables"] = passthrough
    return plistlib.dumps(data)


# --- commands ---------------------------------------------------------------------------------


def service_install(env: ServiceEnv | None = None, port: int = 19898) -> ServiceReport:
    env = env or ServiceEnv()
    if env.system == "Darwin":
        path = launchd_plist_path(env)
        path.parent.mkdir(parents=True, exist_ok=True)
        (Path(env.environ.get("CLAWTRACE_HOME") or env.home / ".clawtrace")).mkdir(
            parents=True, exist_ok=True
        )
        path.write_bytes(launchd_plist_bytes(env, port))
        lines = [f"Wrote {path}"]
        if env.which("launchctl") is None:
            return ServiceReport(
                False, path, [*lines, "launchctl is not available.", _manual_hint(env, port)]
            )
        domain = f"gui/{env.uid}"
        env.run(["launchctl", "bootout", domain, str(path)])  # harmless when not loaded
        done = env.run(["launchctl", "bootstrap", domain, str(path)])
        if done.returncode != 0:
            return ServiceReport(
                False, path, [*lines, f"launchctl bootstrap failed: {done.stderr.strip()}"]
            )
        return ServiceReport(
            True, path, [*lines, f"Loaded {LAUNCHD_LABEL}: ClawTrace now starts at login."]
        )
    if env.system == "Linux":
        path = systemd_unit_path(env)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(systemd_unit_text(env, port))
        lines = [f"Wrote {path}"]
        problem = _systemd_usable(env)
        if problem:
            return ServiceReport(
                False, path, [*lines, f"Not enabled: {problem}.", _manual_hint(env, port)]
            )
        for args in (["daemon-reload"], ["enable", "--now", UNIT_NAME]):
            done = env.run(["systemctl", "--user", *args])
            if done.returncode != 0:
                return ServiceReport(
                    False,
                    path,
                    [*lines, f"systemctl --user {' '.join(args)} failed: {done.stderr.strip()}"],
                )
        return ServiceReport(
            True, path, [*lines, f"Enabled and started {UNIT_NAME}: ClawTrace now starts at login."]
        )
    return ServiceReport(
        False,
        None,
        [f"Starting at login is not supported on {env.system}.", _manual_hint(env, port)],
    )


def service_uninstall(env: ServiceEnv | None = None) -> ServiceReport:
    env = env or ServiceEnv()
    if env.system == "Darwin":
        path = launchd_plist_path(env)
        if env.which("launchctl") is not None and path.exists():
            env.run(["launchctl", "bootout", f"gui/{env.uid}", str(path)])
    elif env.system == "Linux":
        path = systemd_unit_path(env)
        if _systemd_usable(env) is None and path.exists():
            env.run(["systemctl", "--user", "disable", "--now", UNIT_NAME])
    else:
        return ServiceReport(False, None, [f"Nothing to remove on {env.system}."])
    if not path.exists():
        return ServiceReport(True, path, [f"Not installed ({path} does not exist)."])
    path.unlink()
    if env.system == "Linux" and _systemd_usable(env) is None:
        env.run(["systemctl", "--user", "daemon-reload"])
    return ServiceReport(True, path, [f"Removed {path}; ClawTrace no longer starts at login."])


def service_status(env: ServiceEnv | None = None) -> ServiceReport:
    env = env or ServiceEnv()
    if env.system == "Darwin":
        path = launchd_plist_path(env)
        if not path.exists():
            return ServiceReport(False, path, ["Not installed. Run: clawtrace service install"])
        if env.which("launchctl") is None:
            return ServiceReport(False, path, [f"Installed at {path}; launchctl is not available."])
        done = env.run(["launchctl", "print", f"gui/{env.uid}/{LAUNCHD_LABEL}"])
        running = done.returncode == 0 and "state = running" in done.stdout
        return ServiceReport(
            running, path, [f"Installed at {path}; {'running' if running else 'not running'}."]
        )
    if env.system == "Linux":
        path = systemd_unit_path(env)
        if not path.exists():
            return ServiceReport(False, path, ["Not installed. Run: clawtrace service install"])
        problem = _systemd_usable(env)
        if problem:
            return ServiceReport(False, path, [f"Installed at {path}, but {problem}."])
        active = env.run(["systemctl", "--user", "is-active", UNIT_NAME]).stdout.strip()
        enabled = env.run(["systemctl", "--user", "is-enabled", UNIT_NAME]).stdout.strip()
        return ServiceReport(
            active == "active",
            path,
            [f"Installed at {path}; {active or 'unknown'}, {enabled or 'unknown'}."],
        )
    return ServiceReport(False, None, [f"Not supported on {env.system}."])
