"""Who may change analytics settings (API keys, budgets): the organization's owners and admins."""

from __future__ import annotations

from accounts.models import Membership, Organization, Role, User
from accounts.tenancy import organization_scope
from clawtrace_site.exceptions import NotAllowedError


def admin_ensure(*, organization: Organization, actor: User, what: str) -> Membership:
    with organization_scope(organization):
        membership = Membership.objects.filter(user=actor).first()
    if membership is None or not membership.has_role_at_least(Role.ADMIN):
        raise NotAllowedError(f"Only the organization's owners and admins can {what}.")
    return membership
