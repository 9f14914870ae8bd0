from django.http import HttpRequest

from accounts.resolvers import current_organization_resolve
from accounts.selectors import organization_list_for_user


def organizations(request: HttpRequest) -> dict:
    """`current_organization` (or None) and `user_organizations` (each with `.role`)."""
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {"current_organization": None, "user_organizations": []}
    return {
        "current_organization": current_organization_resolve(request),
        "user_organizations": list(organization_list_for_user(user=user)),
    }
