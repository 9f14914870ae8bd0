"""Tenant scoping in one place, fail-closed (style.md section 3).

Every org-owned model subclasses `OrgOwnedModel`. Its `objects` manager filters by the
organization of the current scope and raises `TenantScopeMissing` when no scope is set, so a
view that forgets a filter fails loudly instead of leaking another org's rows. `all_orgs` is the
plain manager (admin, migrations, management commands, cross-org maintenance only).

Requests and tasks enter the scope in exactly three places, each resetting its token in a
`finally` because sync workers and WSGI threads are reused: `OrgMemberRequiredMixin` in
`accounts/mixins.py` (HTML views), the base API views in `clawtrace_site/api.py`, and
`@org_scoped_task` here (Celery). Selectors and services receive the organization as an argument
and open a short `organization_scope` for it; they never pick a tenant themselves.

This module is the bottom layer of accounts: `accounts.models` builds on it, so it imports no
other module of accounts (not even late, inside a function; `accounts/tests/test_dependencies.py`
checks it). It names the tenant model by its label, as a foreign key does.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any, TypeVar

from django.apps import apps
from django.db import models

if TYPE_CHECKING:
    from accounts.models import Organization

# The tenant model, by label: the foreign key of every org-owned row and `@org_scoped_task`
# refer to it this way, which keeps this module free of an import of accounts.models.
TENANT_MODEL = "accounts.Organization"

_current_organization: ContextVar[Organization | None] = ContextVar(
    "clawtrace_current_organization", default=None
)

logger = logging.getLogger(__name__)

_F = TypeVar("_F", bound=Callable[..., Any])


class TenantScopeMissing(RuntimeError):
    """An org-owned model was queried through `objects` outside `organization_scope`."""


@contextmanager
def organization_scope(organization: Organization) -> Iterator[Organization]:
    """Run the block with `organization` as the tenant of every `OrgScopedManager` query."""
    token = _current_organization.set(organization)
    try:
        yield organization
    finally:
        _current_organization.reset(token)


def organization_in_scope() -> Organization | None:
    return _current_organization.get()


class OrgScopedManager(models.Manager):
    def get_queryset(self) -> models.QuerySet:
        organization = _current_organization.get()
        if organization is None:
            raise TenantScopeMissing(
                f"{self.model.__name__}.objects used outside organization_scope(); enter a scope "
                f"(base view, mixin, @org_scoped_task) or use {self.model.__name__}.all_orgs "
                "from an operator tool."
            )
        return super().get_queryset().filter(organization=organization)


class OrgOwnedModel(models.Model):
    """Base of every row that belongs to one organization."""

    organization = models.ForeignKey(
        TENANT_MODEL, on_delete=models.CASCADE, related_name="%(class)ss"
    )

    all_orgs = models.Manager()
    objects = OrgScopedManager()

    class Meta:
        abstract = True
        # Related-object access, admin and migrations go through the plain manager; subclasses
        # that declare Meta must inherit this one (a test checks it for every subclass).
        default_manager_name = "all_orgs"


def org_scoped_task(task_function: _F) -> _F:
    """Run a Celery task body inside the scope of its `organization_id` keyword argument.

    Stack it under `@shared_task`:
    `@shared_task` / `@org_scoped_task` / `def t(*, organization_id)`.
    Tasks take ids, never instances (style.md 7); an organization deleted since enqueueing makes
    the task a logged no-op rather than a crash-and-retry loop.
    """

    @functools.wraps(task_function)
    def wrapper(*args: Any, organization_id: int, **kwargs: Any) -> Any:
        organization = apps.get_model(TENANT_MODEL).objects.filter(pk=organization_id).first()
        if organization is None:
            logger.info(
                "org-scoped task skipped: organization gone",
                extra={"task": task_function.__name__, "organization_id": organization_id},
            )
            return None
        with organization_scope(organization):
            return task_function(*args, organization_id=organization_id, **kwargs)

    return wrapper  # type: ignore[return-value]
