"""Other apps add cards to the organization pages through accounts' registry."""

from __future__ import annotations

import pytest
from django.urls import reverse

from accounts import panels
from accounts.panels import OrganizationPanel, organization_panel_register

pytestmark = pytest.mark.django_db


@pytest.fixture
def no_panels(monkeypatch):
    """The registry as it is without any other app (billing fills it at start-up)."""
    monkeypatch.setattr(panels, "_panels", {})


def test_the_organization_pages_stand_without_any_panel(no_panels, owner_client, org):
    for name in ("accounts:org_home", "accounts:org_settings"):
        response = owner_client.get(reverse(name, args=[org.slug]))
        assert response.status_code == 200
        assert b"<h2>Plan</h2>" not in response.content


def test_a_registered_panel_shows_on_its_page_only_with_its_context(
    no_panels, owner_client, org, settings, tmp_path
):
    (tmp_path / "probe_panel.html").write_text(
        "<section id='probe'>{{ organization.slug }} {{ membership.role }} {{ answer }}</section>"
    )
    settings.TEMPLATES = [
        {**settings.TEMPLATES[0], "DIRS": [*settings.TEMPLATES[0]["DIRS"], tmp_path]}
    ]
    seen = []

    def context(*, organization):
        seen.append(organization)
        return {"answer": 42}

    organization_panel_register(
        OrganizationPanel(
            name="probe", page="org_home", template_name="probe_panel.html", context=context
        )
    )

    home = owner_client.get(reverse("accounts:org_home", args=[org.slug]))
    settings_page = owner_client.get(reverse("accounts:org_settings", args=[org.slug]))

    assert b"<section id='probe'>alpha-labs owner 42</section>" in home.content
    assert b"id='probe'" not in settings_page.content
    assert seen == [org]


def test_registering_a_name_again_replaces_the_panel(no_panels):
    first = OrganizationPanel(name="p", page="org_home", template_name="a.html", context=dict)
    second = OrganizationPanel(name="p", page="org_settings", template_name="b.html", context=dict)
    organization_panel_register(first)
    organization_panel_register(second)
    assert list(panels._panels.values()) == [second]


def test_a_panel_for_an_unknown_page_is_refused(no_panels):
    with pytest.raises(ValueError, match="Unknown page"):
        organization_panel_register(
            OrganizationPanel(name="p", page="dashboard", template_name="a.html", context=dict)
        )
