"""Deployment checks of our own, run by `manage.py check --deploy` (and `make check-deploy`)."""

from __future__ import annotations

from django.conf import settings
from django.core.checks import Tags, register
from django.core.checks import Warning as CheckWarning

PER_PROCESS_CACHES = (
    "django.core.cache.backends.locmem.LocMemCache",
    "django.core.cache.backends.dummy.DummyCache",
)


@register(Tags.caches, Tags.security, deploy=True)
def shared_cache_check(app_configs, **kwargs) -> list[CheckWarning]:
    """allauth's login, signup and reset limits and the API throttles count in the default
    cache. A per-process cache counts each web process on its own, so N processes let N times
    as many password guesses through."""
    backend = settings.CACHES.get("default", {}).get("BACKEND", "")
    if backend in PER_PROCESS_CACHES:
        return [
            CheckWarning(
                "The default cache is per process, so rate limits and throttles are counted by "
                "each process separately.",
                hint="Set CACHE_URL to a shared cache, e.g. redis://host:6379/1.",
                id="clawtrace.W001",
            )
        ]
    return []
