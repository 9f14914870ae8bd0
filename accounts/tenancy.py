"""Tenant scoping in one place, fail-closed (style.md section 3).

Every org-owned model subclasses `OrgOwnedModel`. Its `objects` manager filters by the
organization of the current scope and raises `TenantScopeMissing` when no scope is set, so a
view that forgets a filter fails loudly instead of leaking another org's rows. `all_orgs` is the
plain manager (admin, migrations, management commands, cross-org maintenance only).

Requests and tasks enter the scope in exactly three places, each resetting its token in a
`finally` because sync workers and WSGI threads are reused: `OrgMemberRequiredMixin` here (HTML
views), the base API views in `clawtrace_site/api.py`, and `@org_scoped_task` here (Celery).
Selectors and services receive the organization as an argument and open a short
`organization_scope` for it; they never pick a tenant themselves.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any, TypeVar

from django.core.exceptions import PermissionDenied
from django.db import models
from django.http import Http404, HttpRequest, HttpResponseBase

if TYPE_CHECKING:
    from accounts.models import Membership, Organization

_current_organization: ContextVar[Organization | None] = ContextVar(
    "clawtrace_current_organization", default=None
)

SESSION_KEY_CURRENT_ORGANIZATION = "current_organization_slug"

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
        "accounts.Organization", on_delete=models.CASCADE, related_name="%(class)ss"
    )

    all_orgs = models.Manager()
    objects = OrgScopedManager()

    class Meta:
        abstract = True
        # Related-object access, admin and migrations go through the plain manager; subclasses
        # that declare Meta must inherit this one (a test checks it for every subclass).
        default_manager_name = "all_orgs"


def _membership_for(request: HttpRequest, org_slug: str) -> Membership | None:
    from accounts.selectors import membership_for_user_get

    if not request.user.is_authenticated:
        return None
    return membership_for_user_get(user=request.user, organization_slug=org_slug)


def current_organization_resolve(request: HttpRequest) -> Organization | None:
    """The organization the request works in: the URL's (set by the mixin), else the session's
    remembered one while the user is still a member, else the user's first organization."""
    from accounts.selectors import organization_list_for_user

    organization = getattr(request, "organization", None)
    if organization is not None:
        return organization
    if not request.user.is_authenticated:
        return None
    slug = request.session.get(SESSION_KEY_CURRENT_ORGANIZATION)
    if slug:
        membership = _membership_for(request, slug)
        if membership is not None:
            return membership.organization
    return organization_list_for_user(user=request.user).first()


class OrgMemberRequiredMixin:
    """HTML views under `/o/<org_slug>/`: resolves the org from the slug, requires a Membership,
    and runs the view inside the org's scope.

    Non-members and unknown slugs get the same 404, so a URL never confirms an org exists.
    `required_role` lets a view demand admin or owner; a member who lacks it gets 403 (they can
    see the org anyway, so nothing leaks).
    """

    required_role: str | None = None

    organization: Organization
    membership: Membership

    def dispatch(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
        if not request.user.is_authenticated:
            # Imported here: accounts.models imports this module, and auth views need the
            # user model to be loaded.
            from django.contrib.auth.views import redirect_to_login

            return redirect_to_login(request.get_full_path())
        membership = _membership_for(request, kwargs.get("org_slug", ""))
        if membership is None:
            raise Http404("No such organization.")
        self.membership = membership
        self.organization = membership.organization
        request.organization = membership.organization
        request.membership = membership
        request.session[SESSION_KEY_CURRENT_ORGANIZATION] = membership.organization.slug
        if self.required_role and not membership.has_role_at_least(self.required_role):
            raise PermissionDenied("Your role in this organization does not allow this.")
        with organization_scope(membership.organization):
            return super().dispatch(request, *args, **kwargs)


def org_scoped_task(task_function: _F) -> _F:
    """Run a Celery task body inside the scope of its `organization_id` keyword argument.

    Stack it under `@shared_task`:
    `@shared_task` / `@org_scoped_task` / `def t(*, organization_id)`.
    Tasks take ids, never instances (style.md 7); an organization deleted since enqueueing makes
    the task a logged no-op rather than a crash-and-retry loop.
    """

    @functools.wraps(task_function)
    def wrapper(*args: Any, organization_id: int, **kwargs: Any) -> Any:
        from accounts.models import Organization

        organization = Organization.objects.filter(pk=organization_id).first()
        if organization is None:
            logger.info(
                "org-scoped task skipped: organization gone",
                extra={"task": task_function.__name__, "organization_id": organization_id},
            )
            return None
        with organization_scope(organization):
            return task_function(*args, organization_id=organization_id, **kwargs)

    return wrapper  # type: ignore[return-value]
