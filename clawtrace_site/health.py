"""`/healthz`: the process answers. `/readyz`: it can reach its database and broker.

Both are JSON and unauthenticated (load balancers and `make run` poll them). Failures name the
dependency but never echo the error, which could carry a connection URL with a password.
"""

from __future__ import annotations

import logging
import os

from django.conf import settings
from django.db import connection
from django.http import HttpRequest, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET
from kombu import Connection

logger = logging.getLogger(__name__)

BROKER_TIMEOUT_SECONDS = 2


@never_cache
@require_GET
def healthz(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"status": "ok"})


def _database_check() -> bool:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            return cursor.fetchone() == (1,)
    except Exception:
        logger.exception("readiness: database unreachable")
        return False


def _broker_check() -> bool:
    transport_options = dict(getattr(settings, "CELERY_BROKER_TRANSPORT_OPTIONS", {}))
    try:
        if settings.CELERY_BROKER_URL.startswith("filesystem://"):
            # The filesystem transport "connects" unconditionally; what can fail is the folder.
            folder = transport_options["data_folder_in"]
            return os.path.isdir(folder) and os.access(folder, os.W_OK)
        transport_options.update(
            socket_connect_timeout=BROKER_TIMEOUT_SECONDS, socket_timeout=BROKER_TIMEOUT_SECONDS
        )
        with Connection(
            settings.CELERY_BROKER_URL,
            connect_timeout=BROKER_TIMEOUT_SECONDS,
            transport_options=transport_options,
        ) as broker:
            broker.ensure_connection(
                max_retries=1, interval_start=0, interval_step=0, timeout=BROKER_TIMEOUT_SECONDS
            )
        return True
    except Exception:
        logger.exception("readiness: broker unreachable")
        return False


@never_cache
@require_GET
def readyz(request: HttpRequest) -> JsonResponse:
    checks = {
        "database": "ok" if _database_check() else "unreachable",
        "broker": "ok" if _broker_check() else "unreachable",
    }
    is_ready = all(state == "ok" for state in checks.values())
    return JsonResponse(
        {"status": "ok" if is_ready else "unavailable", "checks": checks},
        status=200 if is_ready else 503,
    )
