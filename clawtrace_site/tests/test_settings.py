"""Settings are read at import, so each case runs a fresh interpreter with its own environment."""

from __future__ import annotations

import json
import os
import secrets
import stat
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
CONFIG_VARIABLES = (
    "DEBUG",
    "SECRET_KEY",
    "ALLOWED_HOSTS",
    "DATABASE_URL",
    "REDIS_URL",
    "EMAIL_URL",
    "EMAIL_BACKEND",
    "CACHE_URL",
    "CLAWTRACE_DATA_DIR",
    "CSRF_TRUSTED_ORIGINS",
    "CONN_MAX_AGE",
    "CELERY_BEAT_SCHEDULE_FILENAME",
    "API_THROTTLE_ANON",
    "TRUSTED_PROXY_COUNT",
    "API_THROTTLE_USER",
    "API_THROTTLE_DEVICE",
    # Set in this process by the browser tests; never part of a real deployment.
    "DJANGO_ALLOW_ASYNC_UNSAFE",
)
PRODUCTION = {
    "DEBUG": "False",
    "SECRET_KEY": secrets.token_urlsafe(50),
    "ALLOWED_HOSTS": "clawtrace.example",
    "DATABASE_URL": "sqlite:////tmp/clawtrace-deploy-check.db",
    "CACHE_URL": "redis://127.0.0.1:6379/1",  # not contacted by these checks
}
PRINT_SETTINGS = (
    "import django, json; from django.conf import settings; django.setup(); "
    "print(json.dumps({'broker': settings.CELERY_BROKER_URL, "
    "'transport': getattr(settings, 'CELERY_BROKER_TRANSPORT_OPTIONS', {}), "
    "'secret': settings.SECRET_KEY, 'db': settings.DATABASES['default']['NAME'], "
    "'hashers': settings.PASSWORD_HASHERS, 'email': settings.EMAIL_BACKEND, "
    "'session_cookie': settings.SESSION_COOKIE_NAME, 'storage': "
    "settings.STORAGES['staticfiles']['BACKEND']}))"
)


def _run(args: list[str], tmp_path: Path, **env: str) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if k not in CONFIG_VARIABLES}
    clean.update({"DJANGO_SETTINGS_MODULE": "clawtrace_site.settings"})
    clean.setdefault("CLAWTRACE_DATA_DIR", str(tmp_path / "data"))
    clean.update(env)
    return subprocess.run(
        [sys.executable, *args], cwd=REPO, env=clean, capture_output=True, text=True, timeout=120
    )


def _settings(tmp_path: Path, **env: str) -> dict:
    result = _run(["-c", PRINT_SETTINGS], tmp_path, **env)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("missing", ["SECRET_KEY", "ALLOWED_HOSTS", "DATABASE_URL"])
def test_production_refuses_to_start_half_configured(tmp_path, missing):
    env = {k: v for k, v in PRODUCTION.items() if k != missing}
    result = _run(["-c", PRINT_SETTINGS], tmp_path, **env)
    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr
    assert missing in result.stderr


def test_production_names_every_missing_variable_at_once(tmp_path):
    result = _run(["-c", PRINT_SETTINGS], tmp_path, DEBUG="False")
    assert "SECRET_KEY, ALLOWED_HOSTS, DATABASE_URL are not set" in result.stderr


def test_deploy_check_is_clean_with_production_settings(tmp_path):
    result = _run(
        ["manage.py", "check", "--deploy", "--fail-level", "WARNING"], tmp_path, **PRODUCTION
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_production_uses_secure_cookie_names_and_manifest_static_files(tmp_path):
    values = _settings(tmp_path, **PRODUCTION)
    assert values["session_cookie"] == "__Secure-sessionid"
    assert values["storage"] == "whitenoise.storage.CompressedManifestStaticFilesStorage"
    assert values["secret"] == PRODUCTION["SECRET_KEY"]


def test_dev_generates_a_secret_key_once_and_keeps_it_private(tmp_path):
    first = _settings(tmp_path)
    second = _settings(tmp_path)
    key_file = tmp_path / "data" / "secret_key"

    assert first["secret"] == second["secret"]
    assert len(first["secret"]) >= 50
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600


def test_dev_defaults_need_no_server(tmp_path):
    values = _settings(tmp_path)
    data = tmp_path / "data"
    assert values["db"] == str(data / "db.sqlite3")
    assert values["broker"] == "filesystem://"
    assert values["transport"]["data_folder_in"] == str(data / "broker" / "in")
    assert values["transport"]["data_folder_out"] == values["transport"]["data_folder_in"]
    assert values["email"] == "django.core.mail.backends.console.EmailBackend"
    assert values["hashers"][0] == "django.contrib.auth.hashers.Argon2PasswordHasher"


def test_redis_url_switches_the_broker_to_redis(tmp_path):
    values = _settings(tmp_path, REDIS_URL="redis://127.0.0.1:6379/3")
    assert values["broker"] == "redis://127.0.0.1:6379/3"
    assert values["transport"] == {}


def test_email_url_configures_smtp(tmp_path):
    values = _settings(tmp_path, EMAIL_URL="smtp://user:pw@mail.example:587")
    assert values["email"] == "django.core.mail.backends.smtp.EmailBackend"


def test_processes_starting_together_agree_on_one_dev_secret_key(tmp_path):
    clean = {k: v for k, v in os.environ.items() if k not in CONFIG_VARIABLES}
    clean.update(DJANGO_SETTINGS_MODULE="clawtrace_site.settings", CLAWTRACE_DATA_DIR=str(tmp_path))
    script = "from django.conf import settings; print(settings.SECRET_KEY)"
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", script], cwd=REPO, env=clean, stdout=subprocess.PIPE, text=True
        )
        for _ in range(4)
    ]
    keys = {process.communicate(timeout=120)[0].strip() for process in processes}
    assert len(keys) == 1
    assert len(keys.pop()) >= 50
    assert [path.name for path in tmp_path.iterdir() if path.name.startswith(".secret")] == []


# --- No folder made at import; each made where it is needed ----------------------------------


def _tree(root: Path) -> set[str]:
    return {str(path.relative_to(root)) for path in root.rglob("*")} if root.exists() else set()


def test_production_settings_create_no_folder(tmp_path):
    _settings(tmp_path, **PRODUCTION)
    assert not (tmp_path / "data").exists()


def test_dev_settings_with_a_secret_key_create_no_folder(tmp_path):
    _settings(tmp_path, SECRET_KEY=secrets.token_urlsafe(50))
    assert not (tmp_path / "data").exists()


def test_dev_settings_without_a_secret_key_make_only_the_private_key_file(tmp_path):
    _settings(tmp_path)
    data = tmp_path / "data"
    assert _tree(data) == {"secret_key"}
    assert stat.S_IMODE(data.stat().st_mode) == 0o700


def test_ensure_local_dirs_makes_the_database_broker_and_result_folders_once(tmp_path):
    env = {"SECRET_KEY": secrets.token_urlsafe(50)}
    first = _run(["manage.py", "ensure_local_dirs"], tmp_path, **env)
    second = _run(["manage.py", "ensure_local_dirs"], tmp_path, **env)

    assert first.returncode == 0, first.stderr
    data = tmp_path / "data"
    assert {"broker/in", "broker/processed", "broker/control", "results"} <= _tree(data)
    assert stat.S_IMODE(data.stat().st_mode) == 0o700
    assert "created" in first.stdout
    assert (second.returncode, second.stdout) == (0, "")


def test_ensure_local_dirs_makes_nothing_for_redis_and_postgres(tmp_path):
    result = _run(
        ["manage.py", "ensure_local_dirs"],
        tmp_path,
        SECRET_KEY=secrets.token_urlsafe(50),
        REDIS_URL="redis://127.0.0.1:6379/3",
        DATABASE_URL="postgres://nobody@127.0.0.1:1/none",
    )
    assert result.returncode == 0, result.stderr
    assert not (tmp_path / "data").exists()


def test_the_celery_app_makes_its_filesystem_broker_folders_when_configured(tmp_path):
    script = (
        "import django; django.setup(); from pathlib import Path; from django.conf import "
        "settings; from clawtrace_site.celery import app; "
        "inbox = Path(settings.CELERY_BROKER_TRANSPORT_OPTIONS['data_folder_in']); "
        "before = inbox.is_dir(); app.conf.broker_url; print(before, inbox.is_dir())"
    )
    result = _run(["-c", script], tmp_path, SECRET_KEY=secrets.token_urlsafe(50))
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["False", "True"]


# --- Production gaps ---------------------------------------------------------------------------


def test_deploy_check_warns_when_rate_limits_would_count_per_process(tmp_path):
    env = {k: v for k, v in PRODUCTION.items() if k != "CACHE_URL"}
    result = _run(["manage.py", "check", "--deploy", "--fail-level", "WARNING"], tmp_path, **env)
    assert result.returncode != 0
    assert "clawtrace.W001" in result.stderr


def test_health_checks_answer_plain_http_while_everything_else_redirects_to_https(tmp_path):
    script = (
        "import django; django.setup(); from django.test import Client; c = Client(); "
        "print(c.get('/healthz', HTTP_HOST='clawtrace.example').status_code, "
        "c.get('/pricing/', HTTP_HOST='clawtrace.example').status_code)"
    )
    result = _run(["-c", script], tmp_path, **PRODUCTION)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split()[-2:] == ["200", "301"]


def test_production_keeps_database_connections_between_requests(tmp_path):
    script = (
        "import django; django.setup(); from django.conf import settings; "
        "db = settings.DATABASES['default']; print(db['CONN_MAX_AGE'], db['CONN_HEALTH_CHECKS'])"
    )
    result = _run(["-c", script], tmp_path, **PRODUCTION)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split()[-2:] == ["60", "True"]


def test_production_takes_client_addresses_from_its_one_proxy_only(tmp_path):
    script = (
        "import django; django.setup(); from django.conf import settings; "
        "print(settings.REST_FRAMEWORK['NUM_PROXIES'], settings.ALLAUTH_TRUSTED_PROXY_COUNT)"
    )
    result = _run(["-c", script], tmp_path, **PRODUCTION)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split()[-2:] == ["1", "1"]
