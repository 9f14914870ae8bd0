"""Nothing leaves the machine except through two doors: the sender (`clawtrace.sync.client`,
opt-in, every batch in the egress log) and the alert channels the user configured
(`clawtrace.alerts.channels`). Every module of the package is read, and an import of a network
client anywhere else fails this test."""

from __future__ import annotations

import ast
from pathlib import Path

import clawtrace

PACKAGE = Path(clawtrace.__file__).parent
NETWORK_CLIENTS = {
    "aiohttp",
    "ftplib",
    "http.client",
    "httpx",
    "requests",
    "smtplib",
    "urllib.request",
    "urllib3",
    "websocket",
    "websockets",
}
DOORS = {
    "sync/client.py": {"httpx"},
    "alerts/channels.py": {"httpx", "smtplib"},
}
# The server listens on a socket of its own (127.0.0.1 unless told otherwise); it connects to
# nothing. Checked below: no connect call in it.
LISTENERS = {"server/runner.py"}


def _imports(tree: ast.AST) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def _network(names: set[str]) -> set[str]:
    return {
        client
        for client in NETWORK_CLIENTS
        for name in names
        if name == client or name.startswith(client + ".")
    }


def test_only_the_sender_and_the_alert_channels_can_send_anything():
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE).as_posix()
        used = _network(_imports(ast.parse(path.read_text(), filename=rel)))
        if used - DOORS.get(rel, set()):
            found[rel] = sorted(used - DOORS.get(rel, set()))
    assert found == {}, f"network clients imported outside the sender and alert channels: {found}"


def test_the_listening_server_connects_nowhere():
    for rel in LISTENERS:
        tree = ast.parse((PACKAGE / rel).read_text())
        calls = [
            ast.unparse(node.func)
            for node in ast.walk(tree)
            if isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr in {"connect", "connect_ex", "create_connection", "sendto"}
            and ast.unparse(node.func) != "store.connect"  # (the local SQLite store)
        ]
        assert calls == [], f"{rel} opens a connection: {calls}"


def test_the_checker_sees_an_import_hidden_in_a_function():
    tree = ast.parse("def f():\n    import urllib.request\n    from http import client\n")
    assert _network(_imports(tree)) == {"urllib.request", "http.client"}
