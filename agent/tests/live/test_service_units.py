"""`clawtrace service`: the systemd user unit and launchd agent it writes, and the messages
where no service manager is available."""

from __future__ import annotations

import plistlib
import subprocess
from pathlib import Path

from clawtrace.service import (
    ServiceEnv,
    service_install,
    service_status,
    service_uninstall,
    systemd_unit_path,
)


class FakeRun:
    def __init__(self, fail: set[str] | None = None) -> None:
        self.calls: list[list[str]] = []
        self.fail = fail or set()

    def __call__(self, args):
        self.calls.append(list(args))
        code = 1 if any(word in self.fail for word in args) else 0
        out = "active\n" if "is-active" in args else "enabled\n" if "is-enabled" in args else ""
        return subprocess.CompletedProcess(args, code, out, "no bus" if code else "")


def linux_env(tmp_path: Path, which=None, run=None) -> ServiceEnv:
    return ServiceEnv(
        system="Linux",
        home=tmp_path,
        environ={"CLAWTRACE_HOME": str(tmp_path / "ct")},
        which=which
        or (lambda name: f"/usr/bin/{name}" if name in ("systemctl", "clawtrace") else None),
        run=run or FakeRun(),
        uid=1000,
    )


def test_install_writes_a_systemd_user_unit_that_runs_serve_on_loopback(tmp_path):
    run = FakeRun()
    report = service_install(linux_env(tmp_path, run=run))
    unit = (tmp_path / ".config/systemd/user/clawtrace.service").read_text()
    assert report.ok
    assert "ExecStart=/usr/bin/clawtrace serve --host 127.0.0.1 --port 19898" in unit
    assert "WantedBy=default.target" in unit
    assert "Restart=on-failure" in unit
    assert f"Environment=CLAWTRACE_HOME={tmp_path / 'ct'}" in unit
    assert ["systemctl", "--user", "enable", "--now", "clawtrace.service"] in run.calls


def test_without_systemd_install_writes_the_unit_and_says_clearly_what_to_do(tmp_path):
    env = linux_env(
        tmp_path, which=lambda name: "/usr/bin/clawtrace" if name == "clawtrace" else None
    )
    report = service_install(env)
    text = "\n".join(report.lines)
    assert not report.ok
    assert systemd_unit_path(env).exists()
    assert "systemd is not installed" in text
    assert "clawtrace serve" in text


def test_without_a_user_session_bus_install_says_so(tmp_path):
    report = service_install(linux_env(tmp_path, run=FakeRun(fail={"show-environment"})))
    assert not report.ok
    assert "no user session" in "\n".join(report.lines)


def test_status_and_uninstall_round_trip(tmp_path):
    env = linux_env(tmp_path)
    assert not service_status(env).ok
    service_install(env)
    status = service_status(env)
    assert status.ok and "active" in status.lines[0]
    removed = service_uninstall(env)
    assert removed.ok
    assert not systemd_unit_path(env).exists()
    assert ["systemctl", "--user", "disable", "--now", "clawtrace.service"] in env.run.calls


def test_on_macos_install_writes_a_launchd_agent_and_bootstraps_it(tmp_path):
    run = FakeRun()
    env = ServiceEnv(
        system="Darwin",
        home=tmp_path,
        environ={},
        which=lambda n: f"/usr/bin/{n}",
        run=run,
        uid=501,
    )
    report = service_install(env)
    plist = plistlib.loads(
        (tmp_path / "Library/LaunchAgents/dev.clawtrace.agent.plist").read_bytes()
    )
    assert report.ok
    assert plist["ProgramArguments"][-5:] == ["serve", "--host", "127.0.0.1", "--port", "19898"]
    assert plist["RunAtLoad"] is True
    assert [
        "launchctl",
        "bootstrap",
        "gui/501",
        str(tmp_path / "Library/LaunchAgents/dev.clawtrace.agent.plist"),
    ] in run.calls
