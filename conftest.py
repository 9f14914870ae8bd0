"""Shared fixtures: two organizations (`org` and `other_org`) with an owner and a member each,
and clients signed in as them."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable

import pytest
from celery._state import _set_task_join_will_block
from django.core.cache import cache
from django.test import Client
from rest_framework.test import APIClient

from accounts.models import Organization, Role, User
from accounts.tests.factories import MembershipFactory, OrganizationFactory, UserFactory
from clawtrace_site.celery import app as celery_app


@pytest.fixture(autouse=True)
def _celery_eager():
    """Tasks run in-process in the fast suite; the worker tests switch this off."""
    previous = (celery_app.conf.task_always_eager, celery_app.conf.task_eager_propagates)
    celery_app.conf.task_always_eager = True
    celery_app.conf.task_eager_propagates = True
    # Celery's process-wide "a task is running here, do not wait on results" mark: a worker's
    # pool sets it and never clears it, and eager tasks run from two threads at once (the race
    # tests) can leave it set when they restore it in turn. A test starts from a plain process.
    _set_task_join_will_block(False)
    yield
    celery_app.conf.task_always_eager, celery_app.conf.task_eager_propagates = previous


@pytest.fixture
def redis_worker():
    """A real Celery worker on Redis (CI's services suite), in this process: tasks leave through
    the broker and run on the worker's thread against the same test database. Skipped, saying
    why, where REDIS_URL is not set (`make test` runs on the embedded broker)."""
    if not os.environ.get("REDIS_URL"):
        pytest.skip("REDIS_URL is not set; this suite runs against a real Redis in CI")
    from celery.contrib.testing.worker import start_worker

    assert celery_app.conf.broker_url.startswith("redis://")
    celery_app.conf.task_always_eager = False  # (`_celery_eager` restores it)
    celery_app.control.purge()
    try:
        with start_worker(celery_app, pool="solo", perform_ping_check=False, shutdown_timeout=10):
            yield celery_app
    finally:
        # A retry left waiting in the broker must not reach a later test.
        celery_app.control.purge()


@pytest.fixture(autouse=True)
def _live_server_one_request_at_a_time(request, monkeypatch):
    """On an in-memory SQLite database, Django's live server hands the test's one connection to
    every request thread (`ThreadedWSGIServer.connections_override`), so two requests at once
    interleave their transactions on it: the sender keeps two batches in flight, and a batch
    of each could end up committed by the other. There, requests are served one at a time (a
    lock per request, not per kept-alive connection), as SQLite has one writer anyway; on
    PostgreSQL each thread has its own connection and nothing changes."""
    if "live_server" not in request.fixturenames:
        return
    from django.core.handlers.base import BaseHandler
    from django.db import connection

    if connection.vendor != "sqlite" or not connection.is_in_memory_db():
        return
    lock = threading.RLock()
    get_response = BaseHandler.get_response

    def one_at_a_time(handler, http_request):
        with lock:
            return get_response(handler, http_request)

    monkeypatch.setattr(BaseHandler, "get_response", one_at_a_time)


@pytest.fixture(autouse=True)
def _fast_password_hasher(settings):
    """Argon2 is deliberately slow; tests hash hundreds of passwords. Production settings keep
    Argon2 first (checked in clawtrace_site/tests/test_settings.py)."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture(autouse=True)
def _fresh_cache():
    """allauth's rate limits count in the cache; tests must not inherit each other's counts."""
    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def owner(db) -> User:
    return UserFactory(email="owner@alpha.example")


@pytest.fixture
def org(owner: User) -> Organization:
    organization = OrganizationFactory(name="Alpha Labs", slug="alpha-labs")
    MembershipFactory(organization=organization, user=owner, role=Role.OWNER)
    return organization


@pytest.fixture
def member(org: Organization) -> User:
    user = UserFactory(email="member@alpha.example")
    MembershipFactory(organization=org, user=user, role=Role.MEMBER)
    return user


@pytest.fixture
def other_owner(db) -> User:
    return UserFactory(email="owner@bravo.example")


@pytest.fixture
def other_org(other_owner: User) -> Organization:
    organization = OrganizationFactory(name="Bravo Secret Works", slug="bravo-secret-works")
    MembershipFactory(organization=organization, user=other_owner, role=Role.OWNER)
    return organization


@pytest.fixture
def client_for() -> Callable[[User], Client]:
    def make(user: User) -> Client:
        client = Client()
        client.force_login(user)
        return client

    return make


@pytest.fixture
def owner_client(owner: User, org: Organization, client_for) -> Client:
    return client_for(owner)


@pytest.fixture
def member_client(member: User, client_for) -> Client:
    return client_for(member)


@pytest.fixture
def api_client_for() -> Callable[[User], APIClient]:
    def make(user: User) -> APIClient:
        client = APIClient()
        client.force_login(user)
        return client

    return make
