"""Exactly once: a batch sent twice, the same turn from two machines of one organization, a
fuller copy, a re-priced copy, and retractions (docs/sync-protocol.md, "Ingest")."""

from __future__ import annotations

from decimal import Decimal

import pytest

from accounts.tenancy import organization_scope
from devices.models import Device
from devices.tests.factories import device_with_secret
from ingest.models import Delivery, Event
from ingest.tests.factories import event_payload
from ingest.tests.helpers import ingest, totals

pytestmark = pytest.mark.django_db


def _events(org) -> list[Event]:
    with organization_scope(org):
        return list(Event.objects.order_by("id"))


def _counts(response) -> tuple[int, int, int, int]:
    assert response.status_code == 200, response.content
    body = response.json()
    return body["accepted"], body["duplicates"], body["updated"], body["retracted"]


def test_the_same_batch_twice_is_stored_once(device_client, device, org):
    batch = [event_payload() for _ in range(50)]
    assert _counts(ingest(device_client, batch)) == (50, 0, 0, 0)
    assert _counts(ingest(device_client, batch)) == (0, 50, 0, 0)
    assert len(_events(org)) == 50
    device.refresh_from_db()
    assert device.event_count == 50


def test_an_event_twice_in_one_batch_is_one_event_and_one_duplicate(device_client, org):
    event = event_payload()
    assert _counts(ingest(device_client, [event, event])) == (1, 1, 0, 0)
    assert len(_events(org)) == 1


def test_two_devices_of_one_organization_count_a_turn_once(org, device_client_for):
    first, first_secret = device_with_secret(org, name="laptop")
    second, second_secret = device_with_secret(org, name="desktop")
    history = [event_payload(input_tokens=n + 1, cost_usd="0.5") for n in range(10)]
    laptop, desktop = device_client_for(first_secret), device_client_for(second_secret)
    assert _counts(ingest(laptop, history)) == (10, 0, 0, 0)
    second_history = [*history[:6], event_payload(input_tokens=100)]
    assert _counts(ingest(desktop, second_history)) == (1, 6, 0, 0)

    organization = totals(laptop, "organization")
    assert organization["turns"] == 11
    assert organization["input_tokens"] == sum(range(1, 11)) + 100
    assert organization["cost_usd"] == pytest.approx(10 * 0.5 + 0.03125)
    # Each device's own totals are over what it sent, so each agrees with its own store.
    assert totals(laptop)["turns"] == 10
    assert totals(desktop)["turns"] == 7
    assert totals(desktop)["input_tokens"] == sum(range(1, 7)) + 100
    first.refresh_from_db()
    second.refresh_from_db()
    assert (first.event_count, second.event_count) == (10, 7)
    # The event belongs to the device that sent it first.
    assert {event.device_id for event in _events(org)} == {first.pk, second.pk}


def test_a_fuller_copy_replaces_the_held_one_and_merges_the_tools(device_client, org):
    partial = event_payload(output_tokens=10, tools=["Read"], timestamp="2026-03-01T12:00:00Z")
    fuller = {
        **partial,
        "output_tokens": 900,
        "tools": ["Edit"],
        "timestamp": "2026-03-01T11:59:59Z",  # more tokens win even when earlier
        "cost_usd": "0.09",
    }
    ingest(device_client, [partial])
    assert _counts(ingest(device_client, [fuller])) == (0, 1, 1, 0)
    [stored] = _events(org)
    assert stored.output_tokens == 900 and stored.cost_usd == Decimal("0.09")
    assert stored.tools == ["Read", "Edit"]


def test_a_copy_with_fewer_tokens_changes_nothing(device_client, org):
    full = event_payload(output_tokens=900)
    ingest(device_client, [full])
    lesser = {**full, "output_tokens": 10, "timestamp": "2026-03-02T00:00:00Z"}
    assert _counts(ingest(device_client, [lesser])) == (0, 1, 0, 0)
    assert _events(org)[0].output_tokens == 900


def test_a_repriced_copy_with_the_same_tokens_replaces_the_cost(device_client, org):
    """`clawtrace sync --resync` after a price change corrects the server's costs."""
    event = event_payload(cost_usd="0.010000000000")
    ingest(device_client, [event])
    repriced = {**event, "cost_usd": "0.012", "price_source": "override"}
    assert _counts(ingest(device_client, [repriced])) == (0, 1, 1, 0)
    [stored] = _events(org)
    assert stored.cost_usd == Decimal("0.012") and stored.price_source == "override"
    assert totals(device_client)["cost_usd"] == pytest.approx(0.012)


def test_an_identical_copy_is_only_a_duplicate(device_client):
    event = event_payload(cost_usd="0.010000000000", tools=["Bash", "Bash"])
    ingest(device_client, [event])
    same_value = {**event, "cost_usd": "0.01"}  # the same amount, written differently
    assert _counts(ingest(device_client, [same_value])) == (0, 1, 0, 0)
    subset_of_tools = {**event, "tools": ["Bash"]}
    assert _counts(ingest(device_client, [subset_of_tools])) == (0, 1, 0, 0)


def test_an_earlier_copy_with_as_many_tokens_changes_nothing(device_client, org):
    event = event_payload(timestamp="2026-03-01T12:00:00Z", cost_usd="0.01")
    ingest(device_client, [event])
    earlier = {**event, "timestamp": "2026-03-01T11:00:00Z", "cost_usd": "0.02"}
    assert _counts(ingest(device_client, [earlier])) == (0, 1, 0, 0)
    assert _events(org)[0].cost_usd == Decimal("0.01")


def test_retract_deletes_the_organizations_event_and_every_devices_count(org, device_client_for):
    first, first_secret = device_with_secret(org)
    second, second_secret = device_with_secret(org)
    kept, gone = event_payload(), event_payload()
    ingest(device_client_for(first_secret), [kept, gone])
    ingest(device_client_for(second_secret), [gone])
    response = ingest(device_client_for(second_secret), [], retract=[gone["event_id"], "f" * 32])
    assert _counts(response) == (0, 0, 0, 1)
    assert [event.event_id.hex for event in _events(org)] == [kept["event_id"]]
    first.refresh_from_db()
    second.refresh_from_db()
    assert (first.event_count, second.event_count) == (1, 0)
    with organization_scope(org):
        assert Delivery.objects.count() == 0  # kept was sent by its first sender only
    # Sent again later (the turn came back): stored again.
    assert _counts(ingest(device_client_for(first_secret), [gone])) == (1, 0, 0, 0)


def test_the_response_counts_add_up_over_a_mixed_batch(device_client):
    held = [event_payload() for _ in range(3)]
    ingest(device_client, held)
    batch = [*held, {**held[0], "output_tokens": 10_000}, event_payload(), event_payload()]
    assert _counts(ingest(device_client, batch, retract=[held[2]["event_id"]])) == (2, 4, 1, 1)
    stats = totals(device_client)
    assert stats["turns"] == 4


def test_stats_has_the_cost_report_keys(device_client, device, org):
    ingest(
        device_client,
        [
            event_payload(
                input_tokens=1,
                output_tokens=2,
                cache_read_tokens=3,
                cache_write_5m_tokens=4,
                cache_write_1h_tokens=5,
                cost_usd="1.25",
                logged_cost_usd="9",
            ),
            event_payload(input_tokens=10, cost_usd=None, logged_cost_usd="2"),
        ],
    )
    response = device_client.get("/api/v1/stats")
    body = response.json()
    assert body["device"] == {"id": str(device.pk), "name": device.name, "organization": org.slug}
    assert body["totals"] == {
        "turns": 2,
        "input_tokens": 11,
        "output_tokens": 2 + 340,
        "cache_read_tokens": 3 + 50_000,
        "cache_write_tokens": 9 + 2_000,
        "cost_usd": 1.25,  # auto mode: the event's cost_usd, unpriced as 0
    }


def test_stats_of_a_device_with_nothing_sent_is_zeros(device_client):
    assert totals(device_client) == {
        "turns": 0,
        "input_tokens": 0,
        "output_tokens": 0,
        "cache_read_tokens": 0,
        "cache_write_tokens": 0,
        "cost_usd": 0.0,
    }


def test_stats_refuses_an_unknown_scope(device_client):
    response = device_client.get("/api/v1/stats", {"scope": "everyone"})
    assert response.status_code == 400 and response.json()["field"] == "scope"


def test_ingest_does_not_touch_the_device_rows_of_other_devices(device_client, org):
    bystander, _ = device_with_secret(org)
    ingest(device_client, [event_payload()])
    assert Device.all_orgs.get(pk=bystander.pk).event_count == 0
