"""Evaluating rules: each anomaly of a rule's kind fires once, each local day or month over a
spend threshold fires once, and nothing fires for what happened before the rule existed, long
ago, in another organization, or for a rule that is off.

Tasks run eagerly; deliveries stay pending unless a test runs the commit callbacks (a test's
transaction never commits), so nothing here posts anywhere it did not choose to."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.conf import settings as django_settings
from django.core import mail

from accounts.models import Membership, Organization
from accounts.tenancy import organization_scope
from alerts.models import Alert, AlertDelivery, DeliveryStatus, Trigger
from alerts.services import ANOMALY_LOOKBACK, organization_alerts_evaluate
from alerts.tasks import alerts_evaluate_all_task, alerts_evaluate_task
from alerts.tests.factories import AlertRecipientFactory, AlertRuleFactory
from analytics.services import anomalies_detect, rollups_rebuild
from analytics.tests.factories import AnomalyFactory, EventFactory

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 3, 18, 15, 40, tzinfo=UTC)
THIS_HOUR = NOW.replace(minute=0)


@pytest.fixture(autouse=True)
def now(time_machine):
    time_machine.move_to(NOW, tick=False)
    return NOW


def _anomaly_rule(org, trigger, **fields):
    return AlertRuleFactory(organization=org, trigger=trigger, threshold_usd=None, **fields)


def _alerts(org) -> list[Alert]:
    with organization_scope(org):
        return list(Alert.objects.order_by("window_start", "id"))


def _in_zone(org: Organization, name: str) -> Organization:
    Organization.objects.filter(pk=org.pk).update(time_zone=name)
    org.refresh_from_db()
    return org


def _spend(org, device, at: datetime, usd: str) -> None:
    EventFactory(organization=org, device=device, occurred_at=at, cost_usd=Decimal(usd))
    rollups_rebuild(organization=org)


# --- Anomaly rules ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("trigger", "subject", "value", "threshold", "unit"),
    [
        (Trigger.DAILY_BUDGET, "", "12.500000", "10", "usd"),
        (Trigger.SESSION_SPIKE, "claude-code:" + "s" * 200, "6.000000", "5", "usd"),
        (Trigger.HOURLY_BURN, "", "4.500000", "3", "usd"),
        (Trigger.HOURLY_REQUESTS, "", "450", "400", "requests"),
        (Trigger.HOURLY_TOKENS, "", "31000000", "30000000", "tokens"),
    ],
)
def test_each_anomaly_kind_fires_its_rule_once(org, trigger, subject, value, threshold, unit):
    rule = _anomaly_rule(org, trigger)
    anomaly = AnomalyFactory(
        organization=org,
        kind=trigger,
        subject=subject,
        value=Decimal(value),
        threshold=Decimal(threshold),
    )

    (alert,) = organization_alerts_evaluate(organization=org)
    again = organization_alerts_evaluate(organization=org)

    assert again == []
    assert (alert.rule, alert.trigger, alert.anomaly_id) == (rule, trigger, anomaly.pk)
    assert (alert.value, alert.threshold, alert.unit) == (Decimal(value), Decimal(threshold), unit)
    assert (alert.window_start, alert.window_end) == (anomaly.window_start, anomaly.window_end)
    assert alert.window_key.startswith(f"anomaly:{trigger}:2026-03-18T15:00Z")
    assert len(alert.window_key) <= Alert._meta.get_field("window_key").max_length
    assert _alerts(org) == [alert]


def test_an_unusual_hour_fires_with_its_expected_spend_as_the_yardstick(org):
    # The hour-of-week baseline has no fixed limit: the alert says what was expected.
    _anomaly_rule(org, Trigger.HOUR_OF_WEEK)
    AnomalyFactory(
        organization=org,
        kind=Trigger.HOUR_OF_WEEK,
        value=Decimal("2.400000"),
        threshold=None,
        baseline=Decimal("0.300000"),
    )

    (alert,) = organization_alerts_evaluate(organization=org)

    assert (alert.value, alert.threshold, alert.unit) == (
        Decimal("2.400000"),
        Decimal("0.300000"),
        "usd",
    )
    assert alert.window_key == "anomaly:hour_of_week:2026-03-18T15:00Z"


def test_a_rule_fires_only_for_anomalies_of_its_own_kind(org):
    burn_rule = _anomaly_rule(org, Trigger.HOURLY_BURN)
    AnomalyFactory(organization=org, kind=Trigger.HOURLY_BURN)
    AnomalyFactory(organization=org, kind=Trigger.DAILY_BUDGET, value=Decimal("11"))

    fired = organization_alerts_evaluate(organization=org)

    assert [(alert.rule, alert.trigger) for alert in fired] == [(burn_rule, Trigger.HOURLY_BURN)]


def test_each_window_of_a_kind_is_an_alert_of_its_own(org):
    _anomaly_rule(org, Trigger.HOURLY_BURN)
    AnomalyFactory(organization=org, window_start=THIS_HOUR - timedelta(hours=1))
    AnomalyFactory(organization=org, window_start=THIS_HOUR)

    fired = organization_alerts_evaluate(organization=org)

    assert [alert.window_start for alert in fired] == [THIS_HOUR - timedelta(hours=1), THIS_HOUR]


def test_a_redetection_with_a_larger_value_does_not_fire_again(org, device):
    # Detection proper, not a factory: the second run updates the anomaly's row in place.
    _anomaly_rule(org, Trigger.HOURLY_BURN)
    _spend(org, device, THIS_HOUR + timedelta(minutes=5), "4.00")
    anomalies_detect(organization=org)
    (alert,) = organization_alerts_evaluate(organization=org)

    _spend(org, device, THIS_HOUR + timedelta(minutes=30), "0.50")
    (anomaly,) = anomalies_detect(organization=org)

    assert anomaly.pk == alert.anomaly_id and anomaly.value == Decimal("4.500000")
    assert organization_alerts_evaluate(organization=org) == []
    assert [a.value for a in _alerts(org)] == [Decimal("4.000000")]


def test_a_growing_session_spike_stays_one_alert(org, device):
    # A session's window is its span, which grows while it runs; detection keeps its start.
    _anomaly_rule(org, Trigger.SESSION_SPIKE)
    _spend(org, device, NOW - timedelta(hours=2), "5.50")
    detected = anomalies_detect(organization=org)
    assert Trigger.SESSION_SPIKE in {anomaly.kind for anomaly in detected}
    (alert,) = organization_alerts_evaluate(organization=org)

    _spend(org, device, NOW - timedelta(minutes=10), "1.00")
    anomalies_detect(organization=org)

    assert organization_alerts_evaluate(organization=org) == []
    assert _alerts(org) == [alert]


def test_an_anomaly_last_seen_before_the_rule_was_made_does_not_fire(org):
    AnomalyFactory(
        organization=org,
        kind=Trigger.DAILY_BUDGET,
        window_start=NOW - timedelta(days=7),
        detected_at=NOW - timedelta(days=7),
    )
    AnomalyFactory(
        organization=org,
        window_start=THIS_HOUR - timedelta(hours=2),
        detected_at=NOW - timedelta(hours=1),
    )
    _anomaly_rule(org, Trigger.DAILY_BUDGET)
    _anomaly_rule(org, Trigger.HOURLY_BURN)

    assert organization_alerts_evaluate(organization=org) == []


def test_of_two_rules_of_a_kind_only_the_one_that_existed_then_fires(org):
    old_rule = _anomaly_rule(org, Trigger.HOURLY_BURN, created_at=NOW - timedelta(days=2))
    _anomaly_rule(org, Trigger.HOURLY_BURN, created_at=NOW)
    AnomalyFactory(organization=org, detected_at=NOW - timedelta(hours=1))

    fired = organization_alerts_evaluate(organization=org)

    assert [alert.rule for alert in fired] == [old_rule]


def test_an_anomaly_still_being_found_when_the_rule_is_made_fires(org):
    # Today's spend went over budget this morning and still is: a rule made now says so.
    AnomalyFactory(
        organization=org,
        kind=Trigger.DAILY_BUDGET,
        window_start=NOW.replace(hour=0, minute=0),
        detected_at=NOW - timedelta(hours=5),
        updated_at=NOW,
    )
    _anomaly_rule(org, Trigger.DAILY_BUDGET, created_at=NOW - timedelta(minutes=3))

    assert len(organization_alerts_evaluate(organization=org)) == 1


def test_an_anomaly_last_seen_outside_the_lookback_does_not_fire(org):
    _anomaly_rule(org, Trigger.HOURLY_BURN, created_at=NOW - timedelta(days=30))
    old = NOW - ANOMALY_LOOKBACK - timedelta(minutes=1)
    recent = NOW - ANOMALY_LOOKBACK + timedelta(minutes=1)
    AnomalyFactory(organization=org, window_start=THIS_HOUR - timedelta(hours=25), detected_at=old)
    AnomalyFactory(
        organization=org, window_start=THIS_HOUR - timedelta(hours=23), detected_at=recent
    )

    fired = organization_alerts_evaluate(organization=org)

    assert [alert.window_start for alert in fired] == [THIS_HOUR - timedelta(hours=23)]


def test_a_disabled_rule_never_fires(org, device):
    _anomaly_rule(org, Trigger.HOURLY_BURN, is_enabled=False)
    AlertRuleFactory(organization=org, trigger=Trigger.SPEND_DAY, is_enabled=False)
    AnomalyFactory(organization=org)
    _spend(org, device, NOW - timedelta(minutes=5), "50.00")

    assert organization_alerts_evaluate(organization=org) == []
    assert _alerts(org) == []


def test_another_organizations_anomalies_and_spend_never_fire_this_organizations_rules(
    org, other_org, device
):
    _anomaly_rule(org, Trigger.HOURLY_BURN)
    AlertRuleFactory(organization=org, trigger=Trigger.SPEND_DAY)
    AnomalyFactory(organization=other_org)
    EventFactory(organization=other_org, occurred_at=NOW - timedelta(minutes=5), cost_usd=50)
    rollups_rebuild(organization=other_org)
    other_rule = _anomaly_rule(other_org, Trigger.HOURLY_BURN)

    assert organization_alerts_evaluate(organization=org) == []
    (other_alert,) = organization_alerts_evaluate(organization=other_org)
    assert other_alert.rule == other_rule
    assert _alerts(org) == []


def test_a_session_spike_in_a_project_the_free_plan_hides_does_not_fire(org, device, settings):
    # The same read as the dashboard's anomalies: what a member cannot see is not alerted.
    settings.BILLING_ENABLED = True
    for project, received in (("api", NOW - timedelta(hours=2)), ("web", NOW - timedelta(hours=1))):
        EventFactory(
            organization=org,
            device=device,
            project=project,
            occurred_at=NOW - timedelta(hours=3),
            received_at=received,
        )
    rollups_rebuild(organization=org)
    _anomaly_rule(org, Trigger.SESSION_SPIKE)
    spikes = {
        project: AnomalyFactory(
            organization=org,
            kind=Trigger.SESSION_SPIKE,
            subject=f"claude-code:{project}",
            details={"session_id": project, "project": project},
        )
        for project in ("web", "api")
    }

    (alert,) = organization_alerts_evaluate(organization=org)

    assert alert.anomaly_id == spikes["api"].pk  # "api" sent first: the project Free shows


# --- Spend rules --------------------------------------------------------------------------------


def test_spend_today_fires_once_the_local_days_spend_crosses_the_threshold(
    org, device, time_machine
):
    # Kolkata is UTC+05:30: its 18 March runs from 17 March 18:30 to 18 March 18:30 UTC.
    _in_zone(org, "Asia/Kolkata")
    rule = AlertRuleFactory(organization=org, trigger=Trigger.SPEND_DAY, threshold_usd=10)
    _spend(org, device, datetime(2026, 3, 17, 17, 30, tzinfo=UTC), "8.00")  # local 17 March
    _spend(org, device, datetime(2026, 3, 17, 19, 0, tzinfo=UTC), "6.00")  # local 18 March

    time_machine.move_to(datetime(2026, 3, 17, 20, 0, tzinfo=UTC))
    assert organization_alerts_evaluate(organization=org) == []  # $6 today, $14 on the UTC day

    _spend(org, device, datetime(2026, 3, 17, 20, 10, tzinfo=UTC), "4.00")
    time_machine.move_to(datetime(2026, 3, 17, 20, 15, tzinfo=UTC))
    (alert,) = organization_alerts_evaluate(organization=org)
    assert organization_alerts_evaluate(organization=org) == []

    assert (alert.rule, alert.window_key, alert.unit) == (rule, "day:2026-03-18", "usd")
    assert (alert.value, alert.threshold) == (Decimal("10.000000"), Decimal("10.00"))
    assert alert.window_start == datetime(2026, 3, 17, 18, 30, tzinfo=UTC)
    assert alert.window_end == datetime(2026, 3, 18, 18, 30, tzinfo=UTC)


def test_spend_today_fires_again_on_the_next_local_day(org, device, time_machine):
    _in_zone(org, "Asia/Kolkata")
    AlertRuleFactory(
        organization=org,
        trigger=Trigger.SPEND_DAY,
        threshold_usd=10,
        created_at=datetime(2026, 3, 17, tzinfo=UTC),
    )
    _spend(org, device, datetime(2026, 3, 17, 19, 0, tzinfo=UTC), "12.00")
    time_machine.move_to(datetime(2026, 3, 18, 18, 0, tzinfo=UTC))  # 23:30 local, 18 March
    assert len(organization_alerts_evaluate(organization=org)) == 1

    time_machine.move_to(datetime(2026, 3, 18, 19, 0, tzinfo=UTC))  # 00:30 local, 19 March
    assert organization_alerts_evaluate(organization=org) == []  # nothing spent yet today
    _spend(org, device, datetime(2026, 3, 18, 19, 5, tzinfo=UTC), "15.00")
    time_machine.move_to(datetime(2026, 3, 18, 19, 10, tzinfo=UTC))
    assert len(organization_alerts_evaluate(organization=org)) == 1

    assert [alert.window_key for alert in _alerts(org)] == ["day:2026-03-18", "day:2026-03-19"]


def test_spend_this_month_fires_once_per_local_month(org, device, time_machine):
    _in_zone(org, "Asia/Kolkata")
    AlertRuleFactory(
        organization=org,
        trigger=Trigger.SPEND_MONTH,
        threshold_usd=50,
        created_at=datetime(2026, 3, 1, tzinfo=UTC),
    )
    _spend(org, device, datetime(2026, 2, 28, 18, 0, tzinfo=UTC), "30.00")  # local 28 February
    _spend(org, device, datetime(2026, 3, 5, 9, 0, tzinfo=UTC), "40.00")
    time_machine.move_to(datetime(2026, 3, 20, 9, 0, tzinfo=UTC))
    assert organization_alerts_evaluate(organization=org) == []  # $40 this month

    _spend(org, device, datetime(2026, 3, 20, 9, 5, tzinfo=UTC), "15.00")
    time_machine.move_to(datetime(2026, 3, 20, 9, 10, tzinfo=UTC))
    (march,) = organization_alerts_evaluate(organization=org)
    time_machine.move_to(datetime(2026, 3, 28, 9, 0, tzinfo=UTC))
    assert organization_alerts_evaluate(organization=org) == []

    # 31 March 19:00 UTC is already 1 April in Kolkata.
    _spend(org, device, datetime(2026, 3, 31, 19, 0, tzinfo=UTC), "60.00")
    time_machine.move_to(datetime(2026, 3, 31, 19, 30, tzinfo=UTC))
    (april,) = organization_alerts_evaluate(organization=org)

    assert (march.window_key, march.value) == ("month:2026-03", Decimal("55.000000"))
    assert march.window_start == datetime(2026, 2, 28, 18, 30, tzinfo=UTC)
    assert march.window_end == datetime(2026, 3, 31, 18, 30, tzinfo=UTC)
    assert (april.window_key, april.value) == ("month:2026-04", Decimal("60.000000"))


# --- Deliveries and tasks -----------------------------------------------------------------------


def test_a_fired_alert_is_delivered_on_each_of_its_channels(
    org, owner, receiver, django_capture_on_commit_callbacks
):
    rule = _anomaly_rule(org, Trigger.HOURLY_BURN, email_enabled=True, webhook_url=receiver.url)
    with organization_scope(org):
        AlertRecipientFactory(
            organization=org, rule=rule, membership=Membership.objects.get(user=owner)
        )
    AnomalyFactory(organization=org)

    with django_capture_on_commit_callbacks(execute=True):
        (alert,) = organization_alerts_evaluate(organization=org)
    with django_capture_on_commit_callbacks(execute=True):
        assert organization_alerts_evaluate(organization=org) == []

    with organization_scope(org):
        deliveries = list(AlertDelivery.objects.filter(alert=alert).order_by("channel"))
    assert [(d.channel, d.status) for d in deliveries] == [
        ("email", DeliveryStatus.SENT),
        ("webhook", DeliveryStatus.SENT),
    ]
    assert receiver.hits == 1 and len(mail.outbox) == 1
    assert "Hourly spend over the limit: $4.50, over $3.00" in receiver.bodies[0]["text"]


def test_the_evaluation_tasks_fan_out_to_organizations_with_a_rule_on(org, other_org):
    _anomaly_rule(org, Trigger.HOURLY_BURN)
    _anomaly_rule(other_org, Trigger.HOURLY_BURN, is_enabled=False)
    AnomalyFactory(organization=org)
    AnomalyFactory(organization=other_org)

    assert alerts_evaluate_all_task.delay().get() == 1
    assert alerts_evaluate_task.delay(organization_id=org.pk).get() == 0  # already fired

    assert len(_alerts(org)) == 1 and _alerts(other_org) == []


def test_evaluation_runs_on_beat_two_minutes_after_each_anomaly_detection():
    schedule = django_settings.CELERY_BEAT_SCHEDULE
    evaluate = schedule["alerts_evaluate_all"]
    detect = schedule["anomalies_detect_all"]

    assert evaluate["task"] == "alerts.tasks.alerts_evaluate_all_task"
    assert {(minute - 2) % 60 for minute in evaluate["schedule"].minute} == detect[
        "schedule"
    ].minute
