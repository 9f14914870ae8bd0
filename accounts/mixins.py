"""The HTML side's entry into a tenant (style.md 3): one of the three places a scope is set."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponseBase

from accounts.models import Membership, Organization
from accounts.resolvers import SESSION_KEY_CURRENT_ORGANIZATION, membership_for_request
from accounts.tenancy import organization_scope


class OrgMemberRequiredMixin:
    """HTML views under `/o/<org_slug>/`: resolves the org from the slug, requires a Membership,
    and runs the view inside the org's scope (left in the `with`'s `finally`, because WSGI
    threads are reused and a leaked scope would serve the next request).

    Non-members and unknown slugs get the same 404, so a URL never confirms an org exists.
    `required_role` lets a view demand admin or owner; a member who lacks it gets 403 (they can
    see the org anyway, so nothing leaks).
    """

    required_role: str | None = None

    organization: Organization
    membership: Membership

    def dispatch(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
        if not request.user.is_authenticated:
            return redirect_to_login(request.get_full_path())
        membership = membership_for_request(request, kwargs.get("org_slug", ""))
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
