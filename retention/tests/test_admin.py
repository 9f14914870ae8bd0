import pytest
from django.urls import reverse

from accounts.tests.factories import UserFactory
from retention.models import RetentionState

pytestmark = pytest.mark.django_db


def test_operator_lists_searches_and_opens_retention_states_read_only(client_for, org):
    client = client_for(UserFactory(is_staff=True, is_superuser=True))
    state = RetentionState.all_orgs.create(organization=org, enforced_days=7)

    assert client.get(reverse("admin:retention_retentionstate_changelist")).status_code == 200
    assert (
        client.get(reverse("admin:retention_retentionstate_changelist"), {"q": "alpha"}).status_code
        == 200
    )
    change = reverse("admin:retention_retentionstate_change", args=[state.pk])
    assert client.get(change).status_code == 200
    client.post(change, {"enforced_days": 1})
    assert RetentionState.all_orgs.get(pk=state.pk).enforced_days == 7
    assert client.get(reverse("admin:retention_retentionstate_add")).status_code == 403
