"""Which organization a request works in. HTML views and the context processor ask here; the
tenant itself is then entered through `accounts.tenancy.organization_scope` by the mixin."""

from __future__ import annotations

from django.http import HttpRequest

from accounts.models import Membership, Organization
from accounts.selectors import membership_for_user_get, organization_list_for_user

SESSION_KEY_CURRENT_ORGANIZATION = "current_organization_slug"


def membership_for_request(request: HttpRequest, organization_slug: str) -> Membership | None:
    """The signed-in user's membership in the org with that slug; None for anonymous users,
    unknown slugs and non-members alike (callers answer all three with the same 404)."""
    if not request.user.is_authenticated:
        return None
    return membership_for_user_get(user=request.user, organization_slug=organization_slug)


def current_organization_resolve(request: HttpRequest) -> Organization | None:
    """The organization the request works in: the URL's (set by the mixin), else the session's
    remembered one while the user is still a member, else the user's first organization."""
    organization = getattr(request, "organization", None)
    if organization is not None:
        return organization
    if not request.user.is_authenticated:
        return None
    slug = request.session.get(SESSION_KEY_CURRENT_ORGANIZATION)
    if slug:
        membership = membership_for_request(request, slug)
        if membership is not None:
            return membership.organization
    return organization_list_for_user(user=request.user).first()
