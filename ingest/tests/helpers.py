from __future__ import annotations

from typing import Any

from rest_framework.test import APIClient

from ingest.tests.factories import batch_body, gzipped


def ingest(client: APIClient, events: list[dict], retract: list[str] | None = None, *, gzip=True):
    body = batch_body(events, retract)
    headers: dict[str, Any] = {}
    if gzip:
        body = gzipped(body)
        headers["HTTP_CONTENT_ENCODING"] = "gzip"
    return client.post("/api/v1/ingest", data=body, content_type="application/json", **headers)


def totals(client: APIClient, scope: str | None = None) -> dict:
    response = client.get("/api/v1/stats", {"scope": scope} if scope else {})
    assert response.status_code == 200, response.content
    return response.json()["totals"]
