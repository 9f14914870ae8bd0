"""The local API's defences: loopback binding, Host-header check, no CORS, token for writes."""

from __future__ import annotations

import os
import stat

import pytest
from clawtrace.server.app import app_create
from clawtrace.server.runner import BindRefused, bind_check
from clawtrace.server.security import local_token_ensure, token_hash
from starlette.testclient import TestClient

from .conftest import PORT


def get(app, host: str, path: str = "/api/health", **headers):
    with TestClient(app, base_url=f"http://{host}", raise_server_exceptions=False) as c:
        return c.get(path, headers=headers)


@pytest.mark.parametrize("host", [f"127.0.0.1:{PORT}", f"localhost:{PORT}", f"LOCALHOST:{PORT}"])
def test_requests_addressed_to_loopback_on_our_port_are_served(server_state, host):
    assert get(app_create(server_state, PORT), host).status_code == 200


@pytest.mark.parametrize(
    "host",
    [
        "evil.example:19898",
        "attacker.test",
        f"127.0.0.1:{PORT + 1}",
        "localhost",
        "127.0.0.1",
        "0.0.0.0:19898",
    ],
)
def test_a_foreign_host_header_is_refused_as_a_dns_rebinding_defence(server_state, host):
    response = get(app_create(server_state, PORT), host)
    assert response.status_code == 421
    assert response.json()["parameter"] == "Host"


def test_the_allowed_hosts_follow_the_port_actually_bound(server_state):
    app = app_create(server_state, 45123)
    assert get(app, "127.0.0.1:45123").status_code == 200
    assert get(app, f"127.0.0.1:{PORT}").status_code == 421


def test_no_cors_headers_are_ever_sent(client):
    response = client.get("/api/summary", headers={"Origin": "https://evil.example"})
    assert response.status_code == 200
    assert not [h for h in response.headers if h.lower().startswith("access-control-")]
    preflight = client.options(
        "/api/summary",
        headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "GET"},
    )
    assert not [h for h in preflight.headers if h.lower().startswith("access-control-")]


def test_the_api_writes_nothing_without_the_token(server_state):
    server_state.token_hash = token_hash("s3cret-token")
    calls = []
    server_state.rescan = lambda: calls.append(1)
    app = app_create(server_state, PORT)
    with TestClient(app, base_url=f"http://127.0.0.1:{PORT}") as c:
        assert c.post("/api/rescan").status_code == 401
        assert c.post("/api/rescan", headers={"Authorization": "Bearer wrong"}).status_code == 401
        assert calls == []
        ok = c.post("/api/rescan", headers={"Authorization": "Bearer s3cret-token"})
        assert ok.status_code == 202
        assert calls == [1]
        assert c.get("/api/summary").status_code == 200  # reads stay open on loopback
        assert c.delete("/api/summary").status_code == 405


@pytest.mark.parametrize("host", ["0.0.0.0", "192.168.1.20", "::", "example.com"])  # noqa: S104
def test_a_non_loopback_address_is_refused_without_the_flag_and_a_token(host):
    with pytest.raises(BindRefused, match="--allow-remote"):
        bind_check(host, allow_remote=False, token=None)
    with pytest.raises(BindRefused):
        bind_check(host, allow_remote=True, token=None)
    with pytest.raises(BindRefused):
        bind_check(host, allow_remote=False, token="t")
    bind_check(host, allow_remote=True, token="t")


def test_loopback_addresses_need_no_flag():
    for host in ("127.0.0.1", "localhost", "::1", "127.0.0.2"):
        bind_check(host, allow_remote=False, token=None)


def test_in_remote_mode_every_request_needs_the_token(server_state):
    server_state.token_hash = token_hash("remote-secret")
    app = app_create(server_state, PORT, require_token_for_reads=True)
    for host in ("10.0.0.5:19898", "laptop.lan:19898", f"127.0.0.1:{PORT}"):
        assert get(app, host).status_code == 401
        assert get(app, host, Authorization="Bearer wrong").status_code == 401
        assert get(app, host, Authorization="Bearer remote-secret").status_code == 200


def test_the_local_token_file_is_created_private_and_reused(tmp_path):
    first = local_token_ensure(tmp_path)
    mode = stat.S_IMODE(os.stat(tmp_path / "api-token").st_mode)
    assert mode == 0o600
    assert len(first) >= 32
    assert local_token_ensure(tmp_path) == first


def test_an_internal_error_is_json_without_a_traceback(server_state, monkeypatch):
    from clawtrace import reports

    def boom(*a, **k):
        raise RuntimeError("secret internals")

    monkeypatch.setattr(reports, "summary", boom)
    response = get(app_create(server_state, PORT), f"127.0.0.1:{PORT}", "/api/summary")
    assert response.status_code == 500
    assert "secret internals" not in response.text
    assert response.json()["error"]
