"""Alert rules, once-per-window firing that survives restarts, and the three channels."""

from __future__ import annotations

import json
import shutil
import sqlite3
import subprocess
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from clawtrace import store
from clawtrace.alerts.channels import (
    Alert,
    ChannelResult,
    desktop_send,
    email_send,
    webhook_body,
    webhook_send,
)
from clawtrace.alerts.engine import AlertDispatcher, AlertEngine, alerts_run
from clawtrace.alerts.settings import (
    AlertSettings,
    EmailSettings,
    WebhookSettings,
    alert_settings_load,
)
from clawtrace.config import ConfigError, config_load
from typer.testing import CliRunner

from . import storefixture
from .stubs import SmtpSink, WebhookStub

TZ = ZoneInfo(storefixture.TZ_NAME)
ALERT = Alert(
    rule="daily_budget",
    window_key="2026-11-20",
    severity="warning",
    title="Daily budget reached: $13.01 today",
    message="You have spent $13.01 today.",
)


@pytest.fixture
def db(fixture_db: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "clawtrace.db"
    shutil.copy(fixture_db, copy)
    return copy


def fired_rows(db: Path) -> list[tuple]:
    with sqlite3.connect(db) as conn:
        return conn.execute(
            "SELECT rule, window_key, channels_json FROM alerts_fired ORDER BY id"
        ).fetchall()


def run_once(db: Path, settings: AlertSettings, dispatcher=None):
    conn = store.connect(db)
    try:
        return alerts_run(conn, AlertEngine(settings, TZ), storefixture.NOW, dispatcher)
    finally:
        conn.close()


# --- rules --------------------------------------------------------------------------------


def test_the_default_rules_are_the_original_ones():
    s = AlertSettings()
    assert (s.daily_budget_usd, s.session_spike_usd, s.hourly_burn_usd) == (10.0, 5.0, 3.0)
    assert s.monthly_warn_percent == (50, 80, 100)
    assert s.hourly_requests > 0 and s.hourly_tokens > 0


def test_the_fixture_day_trips_the_budget_burn_rate_and_runaway_rules(db):
    fired = {alert.rule: alert for _, alert in run_once(db, AlertSettings())}
    assert {"daily_budget", "hourly_burn", "runaway_session"} <= set(fired)
    assert fired["daily_budget"].window_key == "2026-11-20"
    assert fired["runaway_session"].window_key == storefixture.LOOP_SESSION
    assert "hourly_requests" not in fired  # 60 requests in the hour, limit 400


def test_each_alert_fires_once_per_window_even_across_a_restart(db):
    first = run_once(db, AlertSettings())
    assert first
    # A new engine and a new connection: what a restarted `clawtrace serve` has.
    assert run_once(db, AlertSettings()) == []
    assert len(fired_rows(db)) == len(first)


def test_monthly_budget_warns_at_each_threshold_crossed(db):
    settings = AlertSettings(
        monthly_budget_usd=100.0,
        daily_budget_usd=0,
        hourly_burn_usd=0,
        session_spike_usd=0,
        anomaly=False,
        runaway=False,
    )
    fired = [a for _, a in run_once(db, settings)]
    assert [a.rule for a in fired] == ["monthly_budget_50"]  # $72.81 of $100
    tighter = AlertSettings(
        monthly_budget_usd=70.0,
        daily_budget_usd=0,
        hourly_burn_usd=0,
        session_spike_usd=0,
        anomaly=False,
        runaway=False,
    )
    fired = [a for _, a in run_once(db, tighter)]
    assert [a.rule for a in fired] == ["monthly_budget_100"]
    assert fired[0].severity == "critical"


def test_a_month_on_course_to_exceed_the_budget_is_warned_about_before_it_does(db):
    # $72.81 spent by the 20th, about $113 expected: under a $100 budget now, over it by the end.
    settings = AlertSettings(
        monthly_budget_usd=100.0,
        monthly_warn_percent=(80, 100),
        daily_budget_usd=0,
        hourly_burn_usd=0,
        session_spike_usd=0,
        anomaly=False,
        runaway=False,
    )
    (fired,) = [a for _, a in run_once(db, settings)]
    assert fired.rule == "monthly_forecast"
    assert fired.details["expected_usd"] > 100 > fired.details["spent_usd"]
    assert run_once(db, settings) == []


def test_a_zero_limit_turns_a_rule_off(db):
    settings = AlertSettings(
        daily_budget_usd=0, hourly_burn_usd=0, session_spike_usd=0, anomaly=False, runaway=False
    )
    assert run_once(db, settings) == []


# --- delivery never loses the record ------------------------------------------------------


def test_a_webhook_answering_500_is_retried_with_backoff_until_it_succeeds():
    waits: list[float] = []
    with WebhookStub([500, 503, 200]) as hook:
        result = webhook_send(ALERT, WebhookSettings(url=hook.url, retries=3), sleep=waits.append)
    assert result.ok and result.attempts == 3
    assert waits == [0.5, 1.0]
    assert hook.bodies[0]["text"].startswith("*Daily budget reached")
    assert hook.bodies[0]["content"]  # Discord reads `content`


def test_a_webhook_that_times_out_fails_after_its_retries_without_raising():
    with WebhookStub(["hang", "hang"]) as hook:
        result = webhook_send(
            ALERT,
            WebhookSettings(url=hook.url, timeout_seconds=0.2, retries=1),
            sleep=lambda s: None,
        )
    assert not result.ok
    assert result.attempts == 2
    assert "Timeout" in result.error


def test_a_client_error_is_not_retried():
    with WebhookStub([404]) as hook:
        result = webhook_send(ALERT, WebhookSettings(url=hook.url, retries=3), sleep=lambda s: None)
    assert not result.ok and result.attempts == 1 and result.error == "HTTP 404"


def test_a_hanging_webhook_blocks_neither_ingestion_nor_the_alert_record(db):
    settings = AlertSettings(
        desktop=False, hourly_burn_usd=0, session_spike_usd=0, anomaly=False, runaway=False
    )
    with WebhookStub(["hang"]) as hook:
        settings = AlertSettings(
            **{**settings.__dict__, "webhook": WebhookSettings(url=hook.url, retries=0)}
        )
        dispatcher = AlertDispatcher(db, settings)
        fired = run_once(db, settings, dispatcher)  # returns while the webhook is still hanging
        assert [a.rule for _, a in fired] == ["daily_budget"]
        assert hook.received.wait(10)
        assert fired_rows(db) == [("daily_budget", "2026-11-20", "[]")]
        hook.release.set()
        dispatcher.close(wait=True)
    ((_rule, _window, channels),) = fired_rows(db)
    assert json.loads(channels)[0]["channel"] == "webhook"
    assert json.loads(channels)[0]["ok"] is True


def test_a_failed_delivery_is_recorded_beside_the_alert(db):
    with WebhookStub([500, 500]) as hook:
        settings = AlertSettings(
            desktop=False,
            hourly_burn_usd=0,
            session_spike_usd=0,
            anomaly=False,
            runaway=False,
            webhook=WebhookSettings(url=hook.url, retries=1),
        )
        dispatcher = AlertDispatcher(
            db, settings, send=lambda a, s: [webhook_send(a, s.webhook, sleep=lambda _: None)]
        )
        run_once(db, settings, dispatcher)
        dispatcher.close(wait=True)
    ((_, _, channels),) = fired_rows(db)
    assert json.loads(channels) == [
        {"channel": "webhook", "ok": False, "skipped": False, "attempts": 2, "error": "HTTP 500"}
    ]


def test_many_alerts_at_once_go_out_as_one_digest_and_every_record_gets_the_outcome(db):
    sent: list[Alert] = []

    def send(alert, settings):
        sent.append(alert)
        return [ChannelResult("webhook", ok=True, attempts=1)]

    settings = AlertSettings(desktop=False)
    dispatcher = AlertDispatcher(db, settings, send=send)
    fired = run_once(db, settings, dispatcher)
    dispatcher.close(wait=True)
    assert len(fired) > 3
    (digest,) = sent
    assert digest.title == f"{len(fired)} ClawTrace alerts"
    assert digest.severity == "critical"  # the runaway session is among them
    assert all(json.loads(ch)[0]["ok"] for _, _, ch in fired_rows(db))


# --- channels -----------------------------------------------------------------------------


def test_email_goes_out_over_smtp():
    with SmtpSink() as sink:
        result = email_send(
            ALERT,
            EmailSettings(
                host="127.0.0.1",
                port=sink.port,
                sender="ct@example.com",
                to=("me@example.com",),
                starttls=False,
            ),
        )
        assert sink.got.wait(10)
    assert result.ok
    (msg,) = sink.messages
    assert msg["to"] == ["me@example.com"]
    assert "Subject: [ClawTrace] Daily budget reached" in msg["data"]


def test_email_to_a_dead_server_is_a_failed_result_not_an_exception():
    result = email_send(
        ALERT,
        EmailSettings(
            host="127.0.0.1",
            port=1,
            sender="a@b.c",
            to=("d@e.f",),
            starttls=False,
            timeout_seconds=2,
        ),
    )
    assert not result.ok and result.error


def test_desktop_notification_uses_notify_send_on_linux():
    calls = []

    def run(cmd, **kwargs):
        calls.append(cmd)
        return subprocess.CompletedProcess(cmd, 0)

    result = desktop_send(
        ALERT,
        which=lambda n: "/usr/bin/notify-send" if n == "notify-send" else None,
        system="Linux",
        run=run,
    )
    assert result.ok
    assert calls[0][0] == "notify-send" and ALERT.title in calls[0]


def test_desktop_notification_uses_osascript_on_macos_with_quotes_escaped():
    calls = []
    alert = Alert("r", "w", "warning", 'Say "hi"', 'a "quoted" message')
    desktop_send(
        alert,
        which=lambda n: "/usr/bin/osascript",
        system="Darwin",
        run=lambda cmd, **k: calls.append(cmd) or subprocess.CompletedProcess(cmd, 0),
    )
    assert calls[0][:2] == ["osascript", "-e"]
    assert '\\"quoted\\"' in calls[0][2]


def test_desktop_notification_is_skipped_quietly_where_there_is_no_notifier():
    result = desktop_send(ALERT, which=lambda n: None, system="Linux")
    assert result.skipped and not result.ok


def test_the_webhook_body_carries_no_message_content():
    body = webhook_body(ALERT)
    assert set(body) == {"text", "content", "username", "clawtrace"}


# --- config -------------------------------------------------------------------------------


def write_config(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(text)
    return path


def test_alert_settings_come_from_the_config_file(tmp_path):
    path = write_config(
        tmp_path,
        """
[alerts]
daily_budget_usd = 25
monthly_budget_usd = 300
monthly_warn_percent = [80, 100]

[alerts.webhook]
url = "https://hooks.slack.com/services/T/B/X"
retries = 5

[alerts.email]
host = "smtp.example.com"
from = "ct@example.com"
to = "me@example.com"
password_env = "SMTP_PASS"
""",
    )
    s = alert_settings_load(config_load(path))
    assert s.daily_budget_usd == 25 and s.monthly_budget_usd == 300
    assert s.monthly_warn_percent == (80, 100)
    assert s.webhook.retries == 5
    assert s.email.to == ("me@example.com",) and s.email.port == 587


@pytest.mark.parametrize(
    ("text", "line", "key"),
    [
        ('[alerts]\n\ndaily_budget_usd = "ten"\n', 3, "alerts.daily_budget_usd"),
        ("[alerts]\nhourly_requests = 10.5\n", 2, "alerts.hourly_requests"),
        ("[alerts]\nanomaly = 1\n", 2, "alerts.anomaly"),
        ("[alerts]\nbudget = 3\n", 2, "alerts.budget"),
        ('[alerts]\nmonthly_warn_percent = [50, "x"]\n', 2, "alerts.monthly_warn_percent"),
        ('[alerts.webhook]\nurl = "ftp://x"\n', 2, "alerts.webhook.url"),
        (
            '[alerts.email]\nhost = "h"\nfrom = "a@b.c"\nto = "d@e.f"\npassword = "p"\n',
            5,
            "alerts.email.password",
        ),
    ],
)
def test_a_bad_alert_setting_names_its_line_and_key(tmp_path, text, line, key):
    with pytest.raises(ConfigError) as err:
        alert_settings_load(config_load(write_config(tmp_path, text)))
    assert f"line {line}" in str(err.value)
    assert f"'{key}'" in str(err.value)


def test_a_corrupt_config_file_is_a_clear_cli_error_not_a_traceback(tmp_path, monkeypatch):
    from clawtrace.cli import app

    monkeypatch.setenv("CLAWTRACE_HOME", str(tmp_path))
    write_config(tmp_path, "[alerts]\ndaily_budget_usd = = 3\n")
    result = CliRunner().invoke(app, ["alerts", "test"])
    assert result.exit_code == 2
    assert "line 2" in result.output
    assert "Traceback" not in result.output


def test_alerts_test_sends_to_every_configured_channel(tmp_path, monkeypatch):
    from clawtrace.cli import app

    monkeypatch.setenv("CLAWTRACE_HOME", str(tmp_path))
    with WebhookStub([200]) as hook, SmtpSink() as sink:
        write_config(
            tmp_path,
            f"""
[alerts.desktop]
enabled = false

[alerts.webhook]
url = "{hook.url}"

[alerts.email]
host = "127.0.0.1"
port = {sink.port}
starttls = false
from = "ct@example.com"
to = ["me@example.com"]
""",
        )
        result = CliRunner().invoke(app, ["alerts", "test"])
        assert sink.got.wait(10)
    assert result.exit_code == 0, result.output
    assert "webhook: sent" in result.output and "email: sent" in result.output
    assert hook.bodies[0]["clawtrace"]["rule"] == "test"
    assert "ClawTrace test alert" in sink.messages[0]["data"]


def test_alerts_list_shows_what_fired(db, monkeypatch):
    from clawtrace.cli import app

    run_once(db, AlertSettings(desktop=False))
    monkeypatch.setenv("CLAWTRACE_HOME", str(db.parent))
    result = CliRunner().invoke(app, ["alerts", "list", "--json"])
    assert result.exit_code == 0, result.output
    rules = {item["rule"] for item in json.loads(result.output)}
    assert "daily_budget" in rules


def test_alerts_test_says_so_when_no_channel_can_deliver(tmp_path, monkeypatch):
    from clawtrace.alerts import channels
    from clawtrace.cli import app

    monkeypatch.setenv("CLAWTRACE_HOME", str(tmp_path))
    monkeypatch.setattr(channels.shutil, "which", lambda name: None)
    result = CliRunner().invoke(app, ["alerts", "test"])
    assert result.exit_code == 1
    assert "desktop: skipped" in result.output
    assert "No channel could deliver" in result.output
