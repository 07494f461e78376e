"""Alerts end to end: real apprise deliveries to a real webhook and a real SMTP server.

Every test publishes events the way the core's state machine will and looks at what the
receivers got, what ``publish`` decided, what was logged and what the metrics say. Waits are
on conditions (a receiver got N posts, the alerter's queues are empty), never on the clock.
"""

from __future__ import annotations

import inspect
import json
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families
from pydantic import Field, SecretStr, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from rechecker.alerts import Alerter, AlertEvent, AlertSettings, MaintenanceWindow
from rechecker.alerts.events import format_duration, render
from rechecker.logs import RedactingFormatter
from rechecker.models import utcnow
from tests.support.receivers import WAIT_SECONDS, SmtpReceiver, StuckReceiver, WebhookReceiver
from tests.support.targets import free_port

#: Loggers of the test receivers themselves, which are not the system under test.
RECEIVER_LOGGERS = ("mail.log", "aiohttp")
SUNDAY_0230 = datetime(2025, 6, 1, 2, 30, tzinfo=UTC)


class FakeClock:
    """A clock the test moves by hand, for rate-limit windows and maintenance windows."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def settings(*urls: str, **overrides: object) -> AlertSettings:
    """Alert settings for a test: these destinations and retries short enough to wait for."""
    values: dict[str, object] = {
        "urls": list(urls),
        "retry_initial_backoff_s": 0.01,
        "retry_max_backoff_s": 0.05,
    }
    values.update(overrides)
    return AlertSettings.model_validate(values)


def down(domain: str = "shop.example.com", incident: str = "inc-1", **more: object) -> AlertEvent:
    return AlertEvent.model_validate(
        {
            "kind": "down",
            "domain": domain,
            "incident_id": incident,
            "cause": "http_refused",
            "message": "connection refused on 192.0.2.10:443",
            **more,
        }
    )


def counts(registry: CollectorRegistry) -> dict[tuple[str, str], float]:
    """``rechecker_alerts_total`` by (kind, outcome), read back from the exposition text."""
    text = generate_latest(registry).decode()
    found: dict[tuple[str, str], float] = {}
    for family in text_string_to_metric_families(text):
        if family.name != "rechecker_alerts":
            continue
        assert family.type == "counter"
        for sample in family.samples:
            if sample.name == "rechecker_alerts_total":
                found[(sample.labels["kind"], sample.labels["outcome"])] = sample.value
    return found


@asynccontextmanager
async def running(
    alert_settings: AlertSettings,
    registry: CollectorRegistry | None = None,
    clock: Callable[[], datetime] | None = None,
) -> AsyncIterator[Alerter]:
    alerter = Alerter(alert_settings, registry=registry, clock=clock or utcnow)
    await alerter.start()
    try:
        yield alerter
    finally:
        await alerter.stop(drain_timeout_s=WAIT_SECONDS)


@pytest.fixture
async def webhook() -> AsyncIterator[WebhookReceiver]:
    receiver = WebhookReceiver()
    await receiver.start()
    yield receiver
    await receiver.stop()


@pytest.fixture
async def smtp() -> AsyncIterator[SmtpReceiver]:
    receiver = SmtpReceiver()
    await receiver.start()
    yield receiver
    await receiver.stop()


@pytest.fixture
def registry() -> CollectorRegistry:
    return CollectorRegistry()


# --- delivery --------------------------------------------------------------------------------


async def test_down_event_reaches_webhook_and_mail(
    webhook: WebhookReceiver, smtp: SmtpReceiver, registry: CollectorRegistry
) -> None:
    async with running(settings(webhook.url, smtp.url()), registry) as alerter:
        assert alerter.publish(down()) == "queued"
        [post] = await webhook.wait_for_posts(1)
        [mail] = await smtp.wait_for_messages(1)
        assert await alerter.flush(WAIT_SECONDS)

    assert post["title"] == "DOWN: shop.example.com"
    assert post["type"] == "failure"
    assert "shop.example.com is DOWN" in post["message"]
    assert "Cause: http_refused" in post["message"]
    assert smtp.logins == [smtp.user]
    assert mail["To"] == "sre@example.test"
    assert "rechecker@example.test" in mail["From"]
    assert mail["Subject"] == "DOWN: shop.example.com"
    body = mail.get_body(("plain",))
    assert body is not None
    text = body.get_content()
    assert "shop.example.com" in text and "http_refused" in text
    assert (webhook.attempts, len(webhook.posts), len(smtp.messages)) == (1, 1, 1)
    assert counts(registry) == {("down", "sent"): 2}


async def test_recovery_tells_the_downtime(webhook: WebhookReceiver) -> None:
    recovered = AlertEvent(
        kind="recovered",
        domain="shop.example.com",
        incident_id="inc-1",
        downtime_s=750,
        at=datetime(2025, 6, 1, 2, 12, 30, tzinfo=UTC),
    )
    async with running(settings(webhook.url)) as alerter:
        assert alerter.publish(recovered) == "queued"
        [post] = await webhook.wait_for_posts(1)

    assert post["title"] == "RECOVERED: shop.example.com"
    assert post["type"] == "success"
    assert "UP again since 2025-06-01 02:12:30 UTC, down for 12 min 30 s" in post["message"]
    assert "Incident: inc-1" in post["message"]


async def test_same_transition_is_delivered_once(
    webhook: WebhookReceiver, registry: CollectorRegistry
) -> None:
    expiry = datetime(2025, 7, 1, tzinfo=UTC)
    cert = AlertEvent(kind="cert_expiring", domain="shop.example.com", cert_not_after=expiry)
    renewed = AlertEvent(
        kind="cert_expiring", domain="shop.example.com", cert_not_after=expiry + timedelta(days=90)
    )
    async with running(settings(webhook.url), registry) as alerter:
        decisions = [
            alerter.publish(down()),
            alerter.publish(down()),
            alerter.publish(down(incident="inc-2")),
            alerter.publish(cert),
            alerter.publish(cert),
            alerter.publish(renewed),
        ]
        assert await alerter.flush(WAIT_SECONDS)

    assert decisions == ["queued", "duplicate", "queued", "queued", "duplicate", "queued"]
    assert [post["title"] for post in webhook.posts] == [
        "DOWN: shop.example.com",
        "DOWN: shop.example.com",
        "Certificate expiring: shop.example.com",
        "Certificate expiring: shop.example.com",
    ]
    assert webhook.attempts == 4
    assert counts(registry) == {
        ("down", "sent"): 2,
        ("down", "duplicate"): 1,
        ("cert_expiring", "sent"): 2,
        ("cert_expiring", "duplicate"): 1,
    }


async def test_muted_domain_is_not_delivered(
    webhook: WebhookReceiver, registry: CollectorRegistry
) -> None:
    alert_settings = settings(webhook.url, muted_domains="Muted.Example.COM. other.example.org")
    assert alert_settings.muted_domains == ["muted.example.com", "other.example.org"]
    async with running(alert_settings, registry) as alerter:
        assert alerter.publish(down("muted.example.com")) == "muted"
        assert alerter.publish(down("shop.example.com")) == "queued"
        assert await alerter.flush(WAIT_SECONDS)

    assert [post["title"] for post in webhook.posts] == ["DOWN: shop.example.com"]
    assert counts(registry) == {("down", "muted"): 1, ("down", "sent"): 1}


async def test_maintenance_windows_hold_alerts_back(
    webhook: WebhookReceiver, registry: CollectorRegistry, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="rechecker.alerts")
    windows = [
        {
            "name": "db migration",
            "start": "2025-06-01T04:00:00+02:00",  # 02:00 UTC
            "end": "2025-06-01T03:00:00Z",
            "domains": ["db.example.com"],
        },
        # Saturday 23:00 UTC for 4 hours: still on at Sunday 02:30.
        {"name": "backups", "days": ["sat"], "start_time": "23:00", "duration": "PT4H"},
    ]
    clock = FakeClock(SUNDAY_0230)
    alert_settings = settings(webhook.url, maintenance=json.dumps(windows))
    async with running(alert_settings, registry, clock) as alerter:
        assert alerter.publish(down("db.example.com")) == "maintenance"
        assert alerter.publish(down("web.example.com")) == "maintenance"
        clock.now = datetime(2025, 6, 1, 3, 30, tzinfo=UTC)  # both windows over
        assert alerter.publish(down("db.example.com", incident="inc-2")) == "queued"
        assert await alerter.flush(WAIT_SECONDS)

    assert [post["title"] for post in webhook.posts] == ["DOWN: db.example.com"]
    assert counts(registry) == {("down", "maintenance"): 2, ("down", "sent"): 1}
    held = [r for r in caplog.records if getattr(r, "outcome", None) == "maintenance"]
    assert [(r.__dict__["domain"], r.__dict__["maintenance_window"]) for r in held] == [
        ("db.example.com", "db migration"),
        ("web.example.com", "backups"),
    ]


def test_weekly_window_runs_past_midnight_and_one_off_is_scoped() -> None:
    weekly = MaintenanceWindow.model_validate(
        {"days": "Sunday", "start_time": "23:30", "duration": "01:00:00"}
    )
    assert weekly.covers("any.example.com", datetime(2025, 6, 1, 23, 45, tzinfo=UTC))
    assert weekly.covers("any.example.com", datetime(2025, 6, 2, 0, 15, tzinfo=UTC))
    assert not weekly.covers("any.example.com", datetime(2025, 6, 2, 0, 30, tzinfo=UTC))
    assert not weekly.covers("any.example.com", datetime(2025, 6, 2, 23, 45, tzinfo=UTC))
    one_off = MaintenanceWindow(
        start=SUNDAY_0230, end=SUNDAY_0230 + timedelta(hours=1), domains=["A.example.com"]
    )
    assert one_off.covers("a.example.com", SUNDAY_0230)
    assert not one_off.covers("b.example.com", SUNDAY_0230)
    assert not one_off.covers("a.example.com", SUNDAY_0230 + timedelta(hours=1))


async def test_rate_limit_per_destination(
    webhook: WebhookReceiver, registry: CollectorRegistry
) -> None:
    clock = FakeClock(SUNDAY_0230)
    alert_settings = settings(webhook.url, rate_limit_per_destination=2, rate_limit_window_s=60)
    async with running(alert_settings, registry, clock) as alerter:
        decisions = [alerter.publish(down(f"site{n}.example.com")) for n in range(4)]
        assert await alerter.flush(WAIT_SECONDS)
        assert len(webhook.posts) == 2
        clock.now += timedelta(seconds=61)
        decisions.append(alerter.publish(down("site4.example.com")))
        assert await alerter.flush(WAIT_SECONDS)

    assert decisions == ["queued", "queued", "rate_limited", "rate_limited", "queued"]
    assert [post["title"] for post in webhook.posts] == [
        "DOWN: site0.example.com",
        "DOWN: site1.example.com",
        "DOWN: site4.example.com",
    ]
    assert counts(registry) == {("down", "sent"): 3, ("down", "rate_limited"): 2}


# --- failures ----------------------------------------------------------------------------------


async def test_failed_delivery_is_retried_until_accepted(
    webhook: WebhookReceiver, registry: CollectorRegistry, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="rechecker.alerts")
    webhook.answer([500, 500])
    async with running(settings(webhook.url), registry) as alerter:
        assert alerter.publish(down()) == "queued"
        await webhook.wait_for_posts(1)
        assert await alerter.flush(WAIT_SECONDS)

    assert webhook.attempts == 3
    assert len(webhook.posts) == 1
    assert counts(registry) == {("down", "sent"): 1}
    retries = [r for r in caplog.records if getattr(r, "outcome", None) == "attempt_failed"]
    assert [(r.levelno, r.__dict__["attempt"]) for r in retries] == [
        (logging.WARNING, 1),
        (logging.WARNING, 2),
    ]
    assert all("500" in r.getMessage() for r in retries)
    [sent] = [r for r in caplog.records if getattr(r, "outcome", None) == "sent"]
    assert sent.__dict__["attempts"] == 3


async def test_unreachable_receiver_fails_after_retries(
    webhook: WebhookReceiver, registry: CollectorRegistry, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="rechecker.alerts")
    dead = f"json://127.0.0.1:{free_port()}/hook/dead-token"
    assert not inspect.iscoroutinefunction(Alerter.publish)
    async with running(settings(dead, webhook.url, retry_attempts=3), registry) as alerter:
        assert alerter.publish(down()) == "queued"
        await webhook.wait_for_posts(1)
        assert await alerter.flush(WAIT_SECONDS)

    assert counts(registry) == {("down", "sent"): 1, ("down", "failed"): 1}
    dead_label = alerter.destinations[0]
    attempts = [
        r
        for r in caplog.records
        if getattr(r, "outcome", None) == "attempt_failed"
        and r.__dict__["destination"] == dead_label
    ]
    assert [r.__dict__["attempt"] for r in attempts] == [1, 2, 3]
    [failed] = [r for r in caplog.records if getattr(r, "outcome", None) == "failed"]
    assert failed.levelno == logging.ERROR
    assert failed.__dict__["destination"] == dead_label


async def test_a_stuck_receiver_holds_up_nothing(
    webhook: WebhookReceiver, registry: CollectorRegistry
) -> None:
    stuck = StuckReceiver()
    await stuck.start()
    try:
        async with running(settings(stuck.url, webhook.url, retry_attempts=2), registry) as alerter:
            # The first delivery to the stuck receiver stays in flight…
            assert alerter.publish(down("a.example.com")) == "queued"
            await stuck.wait_for_connections(1)
            # …while publishing goes on and the other destination gets everything.
            assert alerter.publish(down("b.example.com")) == "queued"
            assert alerter.publish(down("c.example.com")) == "queued"
            posts = await webhook.wait_for_posts(3)
            assert stuck.connections == 1
            await stuck.release()
            assert await alerter.flush(WAIT_SECONDS)
    finally:
        await stuck.release()

    assert [post["title"] for post in posts] == [
        "DOWN: a.example.com",
        "DOWN: b.example.com",
        "DOWN: c.example.com",
    ]
    assert counts(registry) == {("down", "sent"): 3, ("down", "failed"): 3}


async def test_no_log_line_carries_a_secret(
    webhook: WebhookReceiver, smtp: SmtpReceiver, caplog: pytest.LogCaptureFixture
) -> None:
    # Everything at DEBUG, apprise and urllib3 included: their debug lines print request URLs.
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.DEBUG, logger="apprise")
    caplog.set_level(logging.DEBUG, logger="urllib3")
    # A dead destination whose URL holds the same password and another path token.
    dead = f"json://alerts:{smtp.password}@127.0.0.1:{free_port()}/hook/{webhook.token}-2"
    webhook.answer([500])
    alert_settings = settings(webhook.url, smtp.url(), dead, retry_attempts=2)
    async with running(alert_settings) as alerter:
        alerter.publish(down())
        await webhook.wait_for_posts(1)
        await smtp.wait_for_messages(1)
        assert await alerter.flush(WAIT_SECONDS)

    ours = [r for r in caplog.records if not r.name.startswith(RECEIVER_LOGGERS)]
    assert any(r.name == "apprise" for r in ours), "apprise debug lines were not captured"
    assert any(
        r.name.startswith("urllib3") and f":{webhook.port} " in r.getMessage() for r in ours
    ), "urllib3 request lines were not captured"
    assert any(getattr(r, "outcome", None) == "failed" for r in ours)
    formatter = RedactingFormatter()
    for record in ours:
        for line in (record.getMessage(), formatter.format(record)):
            assert smtp.password not in line, record.name
            assert webhook.token not in line, record.name


# --- metrics ----------------------------------------------------------------------------------


async def test_metrics_count_every_outcome(
    webhook: WebhookReceiver, registry: CollectorRegistry
) -> None:
    clock = FakeClock(SUNDAY_0230)
    alert_settings = settings(
        webhook.url,
        "nosuchscheme://nowhere.example.com",
        queue_size=1,
        rate_limit_per_destination=3,
        muted_domains=["muted.example.com"],
        maintenance=[
            {
                "start": "2025-06-01T02:00:00Z",
                "end": "2025-06-01T03:00:00Z",
                "domains": ["held.example.com"],
            }
        ],
    )
    alerter = Alerter(alert_settings, registry=registry, clock=clock)
    # Before start, events wait in the queue; a queue of one keeps only the newest.
    assert alerter.publish(down("first.example.com")) == "queued"
    assert alerter.publish(down("second.example.com")) == "queued"
    await alerter.start()
    try:
        assert alerter.publish(down("second.example.com")) == "duplicate"
        assert alerter.publish(down("muted.example.com")) == "muted"
        assert alerter.publish(down("held.example.com")) == "maintenance"
        assert await alerter.flush(WAIT_SECONDS)
        assert alerter.publish(down("third.example.com")) == "queued"
        assert alerter.publish(down("fourth.example.com")) == "rate_limited"
        assert await alerter.flush(WAIT_SECONDS)
    finally:
        await alerter.stop(drain_timeout_s=WAIT_SECONDS)
    assert alerter.publish(down("late.example.com")) == "dropped"

    assert [post["title"] for post in webhook.posts] == [
        "DOWN: second.example.com",
        "DOWN: third.example.com",
    ]
    # Two destinations: sent, failed (an unusable URL is not retried), rate_limited and
    # dropped count per destination; duplicate, muted and maintenance once per event.
    assert counts(registry) == {
        ("down", "dropped"): 2 + 2,
        ("down", "sent"): 2,
        ("down", "failed"): 2,
        ("down", "duplicate"): 1,
        ("down", "muted"): 1,
        ("down", "maintenance"): 1,
        ("down", "rate_limited"): 2,
    }


# --- settings and text ------------------------------------------------------------------------


class _Settings(BaseSettings):
    """The nesting the main settings use: ``alerts`` read from ``RECHECKER_ALERTS__*``."""

    model_config = SettingsConfigDict(
        env_prefix="RECHECKER_", env_nested_delimiter="__", hide_input_in_errors=True
    )
    alerts: AlertSettings = Field(default_factory=AlertSettings)


def test_settings_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    urls = (
        "json://hooks.example.com/hook/abc,"
        "mailto://u:p@mail.example.com?to=a@example.com,b@example.com "
        "slack://T1/B2/C3"
    )
    monkeypatch.setenv("RECHECKER_ALERTS__URLS", urls)
    monkeypatch.setenv("RECHECKER_ALERTS__MUTED_DOMAINS", "a.example.com, B.example.com")
    monkeypatch.setenv(
        "RECHECKER_ALERTS__MAINTENANCE",
        '[{"days": ["sat", "sun"], "start_time": "02:00", "duration": "PT2H"}]',
    )
    monkeypatch.setenv("RECHECKER_ALERTS__RATE_LIMIT_PER_DESTINATION", "5")
    alerts = _Settings().alerts
    assert [url.get_secret_value() for url in alerts.urls] == [
        "json://hooks.example.com/hook/abc",
        "mailto://u:p@mail.example.com?to=a@example.com,b@example.com",
        "slack://T1/B2/C3",
    ]
    assert alerts.muted_domains == ["a.example.com", "b.example.com"]
    assert alerts.maintenance[0].days == ["sat", "sun"]
    assert alerts.maintenance[0].duration == timedelta(hours=2)
    assert alerts.rate_limit_per_destination == 5
    assert (alerts.retry_attempts, alerts.queue_size, alerts.rate_limit_window_s) == (5, 1000, 3600)
    assert "p@mail" not in repr(alerts)


@pytest.mark.parametrize(
    ("variable", "value", "explained"),
    [
        ("URLS", "not-a-url:s3cret-value", "URL #1 is not an apprise URL"),
        ("MAINTENANCE", "[{", "not valid JSON"),
        ("MAINTENANCE", '[{"start": "2025-06-01T02:00:00"}]', "should have timezone info"),
        (
            "MAINTENANCE",
            '[{"start": "2025-06-01T02:00:00Z", "end": "2025-06-01T01:00:00Z"}]',
            "must end after it starts",
        ),
        (
            "MAINTENANCE",
            '[{"days": ["sat"], "start_time": "02:00", "duration": 60, '
            '"start": "2025-06-01T02:00:00Z"}]',
            "either one-off",
        ),
        ("MAINTENANCE", '[{"days": ["funday"]}]', "unknown day 'funday'"),
        ("MAINTENANCE", '[{"days": ["sat"], "start_time": "02:00"}]', "needs days, start_time"),
        ("MUTED_DOMAINS", "http://user:pw@x.example.com", "URLs with credentials"),
        ("RETRY_ATTEMPTS", "0", "greater than or equal to 1"),
    ],
)
def test_invalid_settings_are_explained(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str, explained: str
) -> None:
    monkeypatch.setenv(f"RECHECKER_ALERTS__{variable}", value)
    with pytest.raises(ValidationError) as caught:
        _Settings()
    assert explained in str(caught.value)
    assert "s3cret-value" not in str(caught.value)


def test_urls_never_appear_in_validation_errors() -> None:
    with pytest.raises(ValidationError) as caught:
        AlertSettings(urls=[SecretStr("json://ok.example.com/x"), SecretStr("s3cret-value")])
    assert "URL #2 is not an apprise URL" in str(caught.value)
    assert "s3cret-value" not in str(caught.value)


@pytest.mark.parametrize(
    ("event", "title", "lines"),
    [
        (
            down(at=SUNDAY_0230),
            "DOWN: shop.example.com",
            [
                "shop.example.com is DOWN since 2025-06-01 02:30:00 UTC.",
                "Cause: http_refused",
                "connection refused on 192.0.2.10:443",
                "Incident: inc-1",
            ],
        ),
        (
            AlertEvent(
                kind="cert_expiring",
                domain="Shop.Example.com",
                at=SUNDAY_0230,
                cert_not_after=SUNDAY_0230 + timedelta(days=13, hours=4),
            ),
            "Certificate expiring: shop.example.com",
            [
                "The TLS certificate of shop.example.com expires on 2025-06-14 06:30:00 UTC, "
                "in 13 d 4 h."
            ],
        ),
    ],
)
def test_alert_text(event: AlertEvent, title: str, lines: list[str]) -> None:
    assert render(event) == (title, "\n".join(lines))


@pytest.mark.parametrize(
    ("seconds", "said"),
    [(0, "0 s"), (45, "45 s"), (750, "12 min 30 s"), (7205, "2 h"), (90_000, "1 d 1 h")],
)
def test_durations_read_like_a_person_says_them(seconds: float, said: str) -> None:
    assert format_duration(seconds) == said


def test_events_are_checked() -> None:
    with pytest.raises(ValidationError, match="needs cert_not_after"):
        AlertEvent(kind="cert_expiring", domain="shop.example.com")
    with pytest.raises(ValidationError, match="recovered events only"):
        AlertEvent(kind="down", domain="shop.example.com", downtime_s=3)
    with pytest.raises(ValidationError, match="timezone"):
        AlertEvent(kind="down", domain="shop.example.com", at=datetime(2025, 6, 1))
