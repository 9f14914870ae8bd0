"""Tenant isolation, proven by walking every URL pattern of the project.

As a member of org A, every route is requested with org B's slug and B's object ids (and with
A's slug but B's object ids), by GET, POST, PATCH and DELETE. Each must answer 404 (405 only
where the same request for an object that never existed also gets 405), no response may contain
B's names or emails, and nothing of B may change.

Object kwargs are filled from `OBJECT_KWARG_FILLERS` (in `urlwalk.py`, shared with the
hostile-input walk). A URL kwarg that is not registered there fails the walk: a later issue that
adds `<int:device_id>` must register how to make one for an org, so its routes are covered
automatically.
"""

from __future__ import annotations

from typing import Any

import pytest
from django.apps import apps
from django.db import connection
from django.test import Client
from django.urls import reverse

from accounts.models import Invitation, Membership, Organization, Role, User
from accounts.tenancy import OrgOwnedModel, OrgScopedManager, TenantScopeMissing, organization_scope
from accounts.tests.factories import MembershipFactory, OrganizationFactory, UserFactory
from alerts.models import AlertRule
from clawtrace_site.tests.urlwalk import (
    MISSING_SLUG,
    OBJECT_KWARG_FILLERS,
    ORG_KWARG,
    Route,
    UnknownUrlKwargError,
    org_world_create,
    routes_walk,
    url_build,
)
from clawtrace_site.tests.urlwalk import OrgWorld as OtherOrgWorld
from devices.models import Device, EnrollmentKey

# Patterns the walk does not request, each with its reason.
SKIPPED_NAMESPACES = {
    # The operators' admin spans organizations by design and is staff-only (allauth login).
    "admin",
}
SKIPPED_VIEW_MODULE_PREFIXES = (
    # allauth's own pages (login, email, password, MFA) are about the signed-in user only and
    # take no org or org-owned object in their URLs.
    "allauth.",
    # Static files are served by whitenoise / runserver, not org data.
    "django.contrib.staticfiles.",
    "django.views.static.",
)


def _is_skipped(route: Route) -> bool:
    top_namespace = route.namespace.split(":", 1)[0]
    return top_namespace in SKIPPED_NAMESPACES or route.lookup.startswith(
        SKIPPED_VIEW_MODULE_PREFIXES
    )


def route_url_variants(
    route: Route, world: OtherOrgWorld, own_slug: str
) -> list[tuple[str, str, str]]:
    """(label, url with B's objects, the same url with never-existing objects)."""
    unknown = [
        kwarg for kwarg in route.kwargs if kwarg != ORG_KWARG and kwarg not in OBJECT_KWARG_FILLERS
    ]
    if unknown:
        raise UnknownUrlKwargError(
            f"{route.name or route.pattern} takes {unknown}: register a filler for org B in "
            "OBJECT_KWARG_FILLERS so the isolation walk covers it."
        )
    if not route.kwargs:
        return [("plain", url_build(route, {}), url_build(route, {}))]
    if not route.name:
        raise UnknownUrlKwargError(f"{route.pattern} takes kwargs but has no name to reverse.")
    other_objects = {k: OBJECT_KWARG_FILLERS[k][0](world) for k in route.kwargs if k != ORG_KWARG}
    missing_objects = {k: OBJECT_KWARG_FILLERS[k][1] for k in route.kwargs if k != ORG_KWARG}
    variants = []
    if ORG_KWARG in route.kwargs:
        variants.append(
            (
                "other org's slug",
                reverse(route.name, kwargs={ORG_KWARG: world.organization.slug, **other_objects}),
                reverse(route.name, kwargs={ORG_KWARG: MISSING_SLUG, **missing_objects}),
            )
        )
        if other_objects:
            variants.append(
                (
                    "own slug, other org's objects",
                    reverse(route.name, kwargs={ORG_KWARG: own_slug, **other_objects}),
                    reverse(route.name, kwargs={ORG_KWARG: own_slug, **missing_objects}),
                )
            )
    else:
        variants.append(
            (
                "other org's objects",
                reverse(route.name, kwargs=other_objects),
                reverse(route.name, kwargs=missing_objects),
            )
        )
    return variants


def _other_org_snapshot(world: OtherOrgWorld) -> dict[str, Any]:
    organization = Organization.objects.get(pk=world.organization.pk)
    return {
        "organization": (organization.name, organization.slug, organization.plan),
        "memberships": sorted(
            Membership.all_orgs.filter(organization=organization).values_list(
                "id", "user_id", "role"
            )
        ),
        "invitations": sorted(
            Invitation.all_orgs.filter(organization=organization).values_list(
                "id", "email", "role", "accepted_at", "revoked_at"
            )
        ),
        "devices": sorted(
            Device.all_orgs.filter(organization=organization).values_list(
                "id", "name", "revoked_at"
            )
        ),
        "enrollment_keys": sorted(
            EnrollmentKey.all_orgs.filter(organization=organization).values_list(
                "id", "name", "revoked_at"
            )
        ),
        "alert_rules": sorted(
            AlertRule.all_orgs.filter(organization=organization).values_list(
                "id", "name", "trigger", "threshold_usd", "webhook_url", "is_enabled"
            )
        ),
        "users": sorted(
            User.objects.filter(pk__in=[world.owner.pk, world.member.pk]).values_list(
                "id", "email", "is_active", "password"
            )
        ),
    }


@pytest.fixture
def other_world(db) -> OtherOrgWorld:
    world = org_world_create(
        name="Bravo Secret Works", slug="bravo-secret-works", email_domain="bravo-secret.example"
    )
    for make, _missing in OBJECT_KWARG_FILLERS.values():
        make(world)  # made before the snapshot, so the snapshot covers them
    return world


def _hostile_body(world: OtherOrgWorld) -> dict[str, str]:
    # Every POST also tries to name org B and its objects in the body.
    return {
        "organization": world.organization.slug,
        "organization_id": str(world.organization.pk),
        "name": "Hijacked",
        "email": "attacker@alpha.example",
        "role": Role.OWNER,
        "membership_id": str(world.membership.pk),
    }


@pytest.mark.parametrize("walker_role", [Role.OWNER, Role.MEMBER])
def test_member_of_one_org_cannot_read_change_or_detect_another_orgs_objects(
    other_world: OtherOrgWorld, walker_role: str
):
    own_org = OrganizationFactory(name="Alpha Walkers", slug="alpha-walkers")
    walker = UserFactory(email="walker@alpha.example")
    MembershipFactory(organization=own_org, user=walker, role=walker_role)
    if walker_role != Role.OWNER:
        MembershipFactory(organization=own_org, role=Role.OWNER)
    client = Client(enforce_csrf_checks=False)
    client.force_login(walker)
    before = _other_org_snapshot(other_world)

    requested, unknown, failures = 0, [], []
    for route in routes_walk():
        if _is_skipped(route):
            continue
        try:
            variants = route_url_variants(route, other_world, own_org.slug)
        except UnknownUrlKwargError as error:
            unknown.append(str(error))
            continue
        for label, url, missing_url in variants:
            for method in ("get", "post", "patch", "delete"):
                send = getattr(client, method)
                body = _hostile_body(other_world) if method == "post" else None
                response = send(url, body) if body is not None else send(url)
                requested += 1
                text = response.content.decode(errors="replace")
                leaked = [s for s in other_world.secrets_in_text if s.lower() in text.lower()]
                if leaked:
                    failures.append(f"{method.upper()} {url} ({label}) shows {leaked}")
                if label == "plain":
                    continue
                if response.status_code == 405:
                    missing_status = getattr(client, method)(missing_url).status_code
                    if missing_status != 405:
                        failures.append(
                            f"{method.upper()} {url} ({label}) answers 405 but a missing object "
                            f"answers {missing_status}: existence is observable"
                        )
                elif response.status_code != 404:
                    failures.append(
                        f"{method.upper()} {url} ({label}) answered {response.status_code}, not 404"
                    )

    assert not unknown, "\n".join(unknown)
    assert not failures, "\n".join(failures)
    assert requested > 40  # the walk really walked (guards against a silently empty resolver)
    assert _other_org_snapshot(other_world) == before
    assert not Membership.all_orgs.filter(
        organization=other_world.organization, user=walker
    ).exists()


def test_walk_fails_on_a_url_kwarg_it_cannot_fill(other_world: OtherOrgWorld):
    route = Route(
        "o/<slug:org_slug>/widgets/<int:widget_id>/", "x", "x.view", ("org_slug", "widget_id")
    )
    with pytest.raises(UnknownUrlKwargError, match="widget_id"):
        route_url_variants(route, other_world, "alpha")


def test_walk_covers_the_org_routes_and_the_api():
    names = {route.name for route in routes_walk() if not _is_skipped(route)}
    assert {
        "accounts:org_home",
        "accounts:member_list",
        "accounts:member_role_change",
        "accounts:invitation_accept",
        "api:membership_detail",
        "devices:device_list",
        "devices:device_rename",
        "devices:enrollment_key_revoke",
        "api:ingest",
        "api:stats",
        "dashboard:overview",
        "dashboard:member",
        "dashboard:member_plan",
        "dashboard:device",
        "dashboard:project",
        "dashboard:session",
        "dashboard:budgets",
        "dashboard:budget_delete",
        "alerts:rule_list",
        "alerts:rule_update",
        "alerts:rule_enabled",
        "alerts:rule_delete",
        "alerts:delivery_log",
    } <= names


def _org_owned_models() -> list[type[OrgOwnedModel]]:
    return [model for model in apps.get_models() if issubclass(model, OrgOwnedModel)]


def test_there_are_org_owned_models_to_check():
    assert {Membership, Invitation} <= set(_org_owned_models())


@pytest.mark.parametrize("model", _org_owned_models(), ids=lambda model: model.__name__)
def test_org_owned_model_refuses_queries_outside_a_scope(model: type[OrgOwnedModel]):
    with pytest.raises(TenantScopeMissing):
        model.objects.all()


@pytest.mark.parametrize("model", _org_owned_models(), ids=lambda model: model.__name__)
def test_org_owned_model_keeps_the_plain_manager_as_default(model: type[OrgOwnedModel]):
    assert isinstance(model.objects, OrgScopedManager)
    assert model._default_manager.name == "all_orgs"
    assert not isinstance(model._default_manager, OrgScopedManager)


@pytest.mark.parametrize("model", _org_owned_models(), ids=lambda model: model.__name__)
def test_org_owned_model_filters_by_the_scoped_organization(model: type[OrgOwnedModel], db):
    organization = OrganizationFactory()
    with organization_scope(organization):
        sql, params = model.objects.all().query.sql_with_params()
    assert "organization_id" in sql
    assert organization.pk in params


def test_scope_is_left_after_the_block_even_on_error(db):
    organization = OrganizationFactory()
    with pytest.raises(ZeroDivisionError), organization_scope(organization):
        _ = 1 / 0
    with pytest.raises(TenantScopeMissing):
        Membership.objects.all()


def test_scoped_queries_see_only_their_own_organization(org, other_org):
    with organization_scope(org):
        own = set(Membership.objects.values_list("organization_id", flat=True))
    assert own == {org.pk}
    assert connection.vendor in {"sqlite", "postgresql"}
