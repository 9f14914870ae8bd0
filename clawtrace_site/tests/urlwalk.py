"""Walking every URL pattern of the project, shared by the tests that must cover routes added by
later issues without being edited: the tenant isolation walk (`test_tenant_isolation.py`) and
the hostile-input walk (`test_hostile_input.py`).

Object kwargs in URLs are filled from one registry, `OBJECT_KWARG_FILLERS`: a later issue that
adds `<int:device_id>` registers once how to make a device for an organization's `OrgWorld`, and
both walks cover its routes. A kwarg neither walk knows how to fill fails them
(`UnknownUrlKwargError`) instead of being skipped silently.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from django.urls import URLPattern, URLResolver, get_resolver, reverse

from accounts.models import Invitation, Membership, Organization, Role, User
from accounts.services import invitation_create
from accounts.tests.factories import MembershipFactory, OrganizationFactory, UserFactory

ORG_KWARG = "org_slug"
MISSING_SLUG = "no-such-org-7f3a9c"
MISSING_ID = 987_654_321
MISSING_TOKEN = "x" * 43
MISSING_UUID = "00000000-0000-4000-8000-000000000000"


@dataclass
class OrgWorld:
    """One organization with an owner, a member, and a pending invitation."""

    organization: Organization
    owner: User
    member: User
    membership: Membership  # the member's
    invitation: Invitation
    invitation_token: str
    secrets_in_text: list[str] = field(default_factory=list)


def org_world_create(*, name: str, slug: str, email_domain: str) -> OrgWorld:
    organization = OrganizationFactory(name=name, slug=slug)
    owner = UserFactory(email=f"ceo@{email_domain}")
    member = UserFactory(email=f"engineer@{email_domain}")
    MembershipFactory(organization=organization, user=owner, role=Role.OWNER)
    membership = MembershipFactory(organization=organization, user=member, role=Role.MEMBER)
    invitation, token = invitation_create(
        organization=organization,
        invited_by=owner,
        email=f"newhire@{email_domain}",
        role=Role.ADMIN,
        site_url="http://testserver",
    )
    return OrgWorld(
        organization=organization,
        owner=owner,
        member=member,
        membership=membership,
        invitation=invitation,
        invitation_token=token,
        secrets_in_text=[name, owner.email, member.email, invitation.email],
    )


# kwarg name -> (how to fill it with an object of the world's organization, a never-existing
# value of the same shape). Register every org-owned object kwarg here.
OBJECT_KWARG_FILLERS: dict[str, tuple[Callable[[OrgWorld], Any], Any]] = {
    "membership_id": (lambda world: world.membership.pk, MISSING_ID),
    "invitation_id": (lambda world: world.invitation.pk, MISSING_ID),
    "token": (lambda world: world.invitation_token, MISSING_TOKEN),
    "device_id": (lambda world: _world_object(world, "device").pk, MISSING_UUID),
    "key_id": (lambda world: _world_object(world, "enrollment_key").pk, MISSING_ID),
    "api_key_id": (lambda world: _world_object(world, "api_key").pk, MISSING_ID),
    # The dashboard's drill-downs: a session and a project exist as labels on usage.
    "session_id": (lambda world: _world_usage(world)["session_id"], "no-such-session-7f3a9c"),
    "project": (lambda world: _world_usage(world)["project"], "no-such-project-7f3a9c"),
    "budget_id": (lambda world: _world_object(world, "budget").pk, MISSING_ID),
    "rule_id": (lambda world: _world_object(world, "alert_rule").pk, MISSING_ID),
}


def _world_object(world: OrgWorld, kind: str) -> Any:
    """A device, enrollment key, API key, budget or alert rule of the world's organization,
    made once per world (so that a snapshot taken before a walk still holds after it)."""
    from alerts.tests.factories import AlertRuleFactory
    from analytics.tests.factories import BudgetFactory, OrganizationApiKeyFactory
    from devices.tests.factories import DeviceFactory, EnrollmentKeyFactory

    made = world.__dict__.setdefault("_made", {})
    if kind not in made:
        if kind == "budget":
            made[kind] = BudgetFactory(organization=world.organization)
            return made[kind]
        factory = {
            "device": DeviceFactory,
            "enrollment_key": EnrollmentKeyFactory,
            "api_key": OrganizationApiKeyFactory,
            "alert_rule": AlertRuleFactory,
        }[kind]
        name = f"{kind} of {world.organization.slug}"
        made[kind] = factory(organization=world.organization, name=name)
        world.secrets_in_text.append(name)  # no other organization's page may show it
    return made[kind]


def _world_usage(world: OrgWorld) -> dict[str, str]:
    """One turn of the world's organization on its device, rolled up: the session and the
    project of the dashboard's drill-down pages."""
    from analytics.services import rollups_rebuild
    from analytics.tests.factories import EventFactory

    made = world.__dict__.setdefault("_made", {})
    if "usage" not in made:
        labels = {
            "session_id": f"session-of-{world.organization.slug}",
            "project": f"project of {world.organization.slug}",
        }
        EventFactory(
            organization=world.organization, device=_world_object(world, "device"), **labels
        )
        rollups_rebuild(organization=world.organization)
        world.secrets_in_text.extend(labels.values())
        made["usage"] = labels
    return made["usage"]


# Kwargs of third-party routes (allauth, the admin) that name no org-owned object: a plausible
# value of the right shape is enough to reach the view. The isolation walk skips these routes.
THIRD_PARTY_KWARG_VALUES: dict[str, str] = {
    "key": "MQ:1tWxyz:abcdefABCDEF0123456789",  # allauth email confirmation / reset key
    "uidb36": "1z",  # allauth password reset user id
    "object_id": "1",  # admin change/delete/history
    "content_type_id": "1",  # admin view-on-site
    "id": "1",  # admin user password change
    "app_label": "accounts",  # admin app index
    "url": "nowhere/",  # admin catch-all
}


class UnknownUrlKwargError(AssertionError):
    pass


@dataclass
class Route:
    pattern: str
    name: str | None
    lookup: str
    kwargs: tuple[str, ...]
    namespace: str = ""

    @property
    def top_namespace(self) -> str:
        return self.namespace.split(":", 1)[0]


def _kwargs_of(pattern: Any) -> list[str]:
    # Both RoutePattern and RegexPattern compile to a regex with one named group per kwarg;
    # RegexPattern's `converters` is always empty, so it cannot be the source.
    return list(pattern.regex.groupindex)


def routes_walk(
    resolver: URLResolver | None = None,
    prefix: str = "",
    namespace: str = "",
    kwargs: tuple[str, ...] = (),
) -> Iterator[Route]:
    """Every URL pattern of the project, however deeply included."""
    resolver = resolver or get_resolver()
    for entry in resolver.url_patterns:
        entry_kwargs = (*kwargs, *_kwargs_of(entry.pattern))
        if isinstance(entry, URLResolver):
            child_namespace = ":".join(part for part in (namespace, entry.namespace) if part)
            yield from routes_walk(
                entry, prefix + str(entry.pattern), child_namespace, entry_kwargs
            )
        elif isinstance(entry, URLPattern):
            name = f"{namespace}:{entry.name}" if namespace and entry.name else entry.name
            yield Route(
                prefix + str(entry.pattern), name, entry.lookup_str, entry_kwargs, namespace
            )


def url_build(route: Route, kwargs: dict[str, Any]) -> str:
    """The route's URL with `kwargs` filled in: by `reverse` when the route has a name, else by
    filling the pattern text (unnamed admin redirects, `re_path` catch-alls)."""
    if route.name:
        return reverse(route.name, kwargs=kwargs)
    return url_fill(route, kwargs)


def url_fill(route: Route, kwargs: dict[str, Any]) -> str:
    """The route's URL with any values at all in its kwargs (percent-encoded), even ones its
    converters would refuse to reverse: for probing with hostile path segments."""
    quoted = {kwarg: quote(str(value), safe="") for kwarg, value in kwargs.items()}
    return "/" + _pattern_fill(route.pattern, quoted)


def _pattern_fill(pattern: str, values: dict[str, str]) -> str:
    text = re.sub(r"<(?:\w+:)?(\w+)>", lambda match: values[match.group(1)], pattern)
    out, index = [], 0
    while index < len(text):
        group = re.match(r"\(\?P<(\w+)>", text[index:])
        if group:
            # Skip the whole (balanced) group and put the value in its place.
            depth, index = 1, index + group.end()
            while depth:
                depth += {"(": 1, ")": -1}.get(text[index], 0)
                index += 1 + (text[index] == "\\")
            out.append(values[group.group(1)])
            continue
        out.append(text[index])
        index += 1
    # Anchors of the regex parts (an include's `^x/$` lands mid-string after its prefix).
    return re.sub(r"(^|/)\^|\$$", r"\1", "".join(out))
