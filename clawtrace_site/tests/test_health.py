from __future__ import annotations

import pytest
from django.db.utils import OperationalError

from clawtrace_site import health


def test_healthz_answers_ok_without_touching_the_database(client):
    # No django_db mark: any query here would raise.
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


@pytest.mark.django_db
def test_readyz_reports_database_and_broker_ok(client):
    response = client.get("/readyz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "checks": {"database": "ok", "broker": "ok"}}


@pytest.mark.django_db
def test_readyz_is_503_naming_an_unreachable_broker(client, settings):
    settings.CELERY_BROKER_URL = "redis://127.0.0.1:1/0"
    response = client.get("/readyz")
    assert response.status_code == 503
    assert response.json() == {
        "status": "unavailable",
        "checks": {"database": "ok", "broker": "unreachable"},
    }


@pytest.mark.django_db
def test_readyz_is_503_when_the_filesystem_broker_folder_is_missing(client, settings, tmp_path):
    settings.CELERY_BROKER_URL = "filesystem://"
    settings.CELERY_BROKER_TRANSPORT_OPTIONS = {"data_folder_in": str(tmp_path / "gone")}
    response = client.get("/readyz")
    assert response.status_code == 503
    assert response.json()["checks"]["broker"] == "unreachable"


@pytest.mark.django_db
def test_readyz_is_503_naming_an_unreachable_database(client, monkeypatch):
    class BrokenCursor:
        def __enter__(self):
            raise OperationalError("connection refused to postgres://user:hunter2@db")

        def __exit__(self, *exc):
            return False

    monkeypatch.setattr(health.connection, "cursor", lambda: BrokenCursor())
    response = client.get("/readyz")
    assert response.status_code == 503
    assert response.json()["checks"]["database"] == "unreachable"
    assert b"hunter2" not in response.content


def test_health_endpoints_refuse_writes(client):
    assert client.post("/healthz").status_code == 405
