from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from celery import shared_task
from celery.schedules import crontab
from django.conf import settings

from accounts.models import Membership
from accounts.tenancy import TenantScopeMissing, org_scoped_task
from clawtrace_site.celery import app
from clawtrace_site.tasks import ping

REPO = Path(__file__).resolve().parents[2]

# Runs in a fresh interpreter without REDIS_URL: the exact broker `make run` uses, with a real
# worker consuming from the filesystem queue and a result coming back through the file backend.
FILESYSTEM_WORKER_SCRIPT = """
import django
django.setup()
from celery.contrib.testing.worker import start_worker
from clawtrace_site.celery import app
from clawtrace_site.tasks import ping
assert app.conf.broker_url == "filesystem://", app.conf.broker_url
with start_worker(app, pool="solo", perform_ping_check=False, shutdown_timeout=10):
    print("RESULT", ping.delay().get(timeout=30))
"""


def test_ping_task_answers_pong():
    assert ping.delay().get(timeout=5) == "pong"


def test_beat_schedule_entries_are_crontabs_with_expiry_for_registered_tasks():
    app.loader.import_default_modules()
    schedule = settings.CELERY_BEAT_SCHEDULE
    assert schedule
    for name, entry in schedule.items():
        assert isinstance(entry["schedule"], crontab), name
        assert entry["options"]["expires"] > 0, name
        assert entry["task"] in app.tasks, f"{name}: {entry['task']} is not a registered task"


def test_celery_runs_json_only_with_late_acks_and_time_limits():
    assert app.conf.task_serializer == "json"
    assert app.conf.accept_content == ["json"]
    assert app.conf.task_acks_late is True
    assert app.conf.task_reject_on_worker_lost is True
    assert 0 < app.conf.task_soft_time_limit < app.conf.task_time_limit


@shared_task(name="tests.member_emails_task")
@org_scoped_task
def member_emails_task(*, organization_id: int) -> list[str]:
    return sorted(Membership.objects.values_list("user__email", flat=True))


def test_org_scoped_task_runs_inside_its_organizations_scope(org, member, other_org):
    assert member_emails_task.delay(organization_id=org.pk).get() == [
        "member@alpha.example",
        "owner@alpha.example",
    ]
    assert member_emails_task.delay(organization_id=other_org.pk).get() == ["owner@bravo.example"]
    with pytest.raises(TenantScopeMissing):
        Membership.objects.all()


@pytest.mark.django_db
def test_org_scoped_task_for_a_deleted_organization_is_a_no_op():
    assert member_emails_task.delay(organization_id=987654).get() is None


def test_filesystem_broker_works_with_a_real_worker_and_no_server(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in {"REDIS_URL", "DATABASE_URL"}}
    env.update(CLAWTRACE_DATA_DIR=str(tmp_path), DJANGO_SETTINGS_MODULE="clawtrace_site.settings")
    result = subprocess.run(
        [sys.executable, "-c", FILESYSTEM_WORKER_SCRIPT],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "RESULT pong" in result.stdout


@pytest.mark.redis
def test_real_worker_on_redis_answers_ping(redis_worker):
    assert ping.delay().get(timeout=30) == "pong"


def test_a_worker_started_from_the_command_line_registers_every_task():
    # `celery -A clawtrace_site worker` knows only what autodiscovery imports; the tests above
    # import task modules themselves and so cannot notice a task the worker would not know.
    code = (
        "from clawtrace_site.celery import app; app.loader.import_default_modules(); "
        "print(sorted(name for name in app.tasks if not name.startswith('celery.')))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    registered = result.stdout
    assert "'ping'" in registered
    assert "invitation_expired_purge_task" in registered
    assert "alerts.tasks.alert_delivery_send_task" in registered
    assert "retention.tasks.retention_nightly_task" in registered
