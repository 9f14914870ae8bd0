"""Shared fixtures of the live-agent tests: a fixture store and an API client bound to it."""

from __future__ import annotations

import sys
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from starlette.testclient import TestClient

sys.path.insert(0, str(Path(__file__).parent))

import storefixture
from clawtrace.server.app import ServerState, app_create

PORT = 19898


@pytest.fixture(scope="session")
def fixture_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return storefixture.fixture_store_build(tmp_path_factory.mktemp("store") / "clawtrace.db")


@pytest.fixture(scope="session")
def realistic_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """fixture_rows plus long names and history older than 90 days (realistic_extra_rows)."""
    rows = storefixture.fixture_rows() + storefixture.realistic_extra_rows()
    return storefixture.fixture_store_build(
        tmp_path_factory.mktemp("real") / "clawtrace.db", rows=rows
    )


@pytest.fixture(scope="session")
def old_only_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    rows = storefixture.old_only_rows()
    return storefixture.fixture_store_build(
        tmp_path_factory.mktemp("old") / "clawtrace.db", rows=rows
    )


def client_for(db: Path) -> TestClient:
    state = ServerState(db_path=db, tz=ZoneInfo(storefixture.TZ_NAME), now=lambda: storefixture.NOW)
    return TestClient(
        app_create(state, PORT), base_url=f"http://127.0.0.1:{PORT}", raise_server_exceptions=False
    )


@pytest.fixture
def server_state(fixture_db: Path) -> ServerState:
    return ServerState(
        db_path=fixture_db, tz=ZoneInfo(storefixture.TZ_NAME), now=lambda: storefixture.NOW
    )


@pytest.fixture
def client(server_state: ServerState) -> TestClient:
    app = app_create(server_state, PORT)
    with TestClient(app, base_url=f"http://127.0.0.1:{PORT}", raise_server_exceptions=False) as c:
        yield c
