"""`clawtrace serve` from the command line: what it refuses, and how it says so."""

from __future__ import annotations

import socket

from clawtrace.cli import app
from typer.testing import CliRunner

from .test_alerts import write_config


def test_serve_refuses_a_public_address_without_the_flag_and_a_token(tmp_path, monkeypatch):
    monkeypatch.setenv("CLAWTRACE_HOME", str(tmp_path))
    result = CliRunner().invoke(app, ["serve", "--host", "0.0.0.0"])  # noqa: S104
    assert result.exit_code == 2
    assert "--allow-remote" in result.output
    assert not (tmp_path / "clawtrace.db").exists()


def test_serve_with_a_corrupt_config_names_the_line_and_key(tmp_path, monkeypatch):
    monkeypatch.setenv("CLAWTRACE_HOME", str(tmp_path))
    write_config(tmp_path, "[alerts]\nsession_spike_usd = -1\n")
    result = CliRunner().invoke(app, ["serve"])
    assert result.exit_code == 2
    assert "line 2" in result.output and "alerts.session_spike_usd" in result.output
    assert "Traceback" not in result.output


def test_serve_on_a_busy_port_says_so_plainly(tmp_path, monkeypatch):
    monkeypatch.setenv("CLAWTRACE_HOME", str(tmp_path))
    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen()
    port = busy.getsockname()[1]
    try:
        result = CliRunner().invoke(
            app,
            [
                "serve",
                "--port",
                str(port),
                "--claude-dir",
                str(tmp_path / "c"),
                "--openclaw-dir",
                str(tmp_path / "o"),
            ],
        )
    finally:
        busy.close()
    assert result.exit_code == 2
    assert "is another `clawtrace serve` running?" in result.output
    assert "watching your agent logs" not in result.output
