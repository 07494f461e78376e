"""Results drive UP → DOWN → UP through thresholds, and people hear of each change once,
for real: a webhook receiver (apprise ``json://``) and an SMTP server (aiosmtpd)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from pydantic import SecretStr

from rechecker.alerts import Alerter, AlertSettings, MaintenanceWindow
from rechecker.core.recorder import Recorder
from rechecker.core.service import alert_for
from rechecker.core.state import Thresholds
from rechecker.models import CheckResult, DnsOutcome, DnsResult, Site, State
from rechecker.store import Store, create_store
from tests.support.receivers import SmtpReceiver, WebhookReceiver

DOMAIN = "shop.example"
START = datetime.now(UTC).replace(microsecond=0)


def check(minute: int, verdict: State) -> CheckResult:
    down = verdict is State.DOWN
    return CheckResult(
        domain=DOMAIN,
        url=f"https://{DOMAIN}/",
        timestamp=START + timedelta(minutes=minute),
        state=verdict,
        verdict=verdict,
        status_code=None if down else 200,
        error_class="http_refused" if down else "",
        error_message=f"connection refused by {DOMAIN}:443" if down else "",
        dns=DnsResult(outcome=DnsOutcome.OK, addresses=["192.0.2.7"]),
    )


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    instance = create_store(f"sqlite+aiosqlite:///{tmp_path / 'store.sqlite3'}")
    await instance.open()
    await instance.add_sites([Site(domain=DOMAIN, url=f"https://{DOMAIN}/")])
    yield instance
    await instance.close()


@pytest.fixture
async def receivers() -> AsyncIterator[tuple[WebhookReceiver, SmtpReceiver]]:
    webhook, smtp = WebhookReceiver(), SmtpReceiver()
    await webhook.start()
    await smtp.start()
    yield webhook, smtp
    await webhook.stop()
    await smtp.stop()


def alert_settings(
    receivers: tuple[WebhookReceiver, SmtpReceiver], *windows: MaintenanceWindow
) -> AlertSettings:
    webhook, smtp = receivers
    return AlertSettings(
        urls=[SecretStr(webhook.url), SecretStr(smtp.url())],
        maintenance=list(windows),
        retry_initial_backoff_s=0.01,
    )


async def feed(store: Store, alerter: Alerter, verdicts: list[State]) -> list[State]:
    """Record one check per interval, as cycles would, and return the domain's states."""
    recorder = Recorder(
        store,
        Thresholds(failures=2, successes=1),
        on_transition=lambda t: alerter.publish(alert_for(t)),
    )
    states = []
    for minute, verdict in enumerate(verdicts):
        [recorded] = await recorder.record([check(8 * minute, verdict)])
        states.append(recorded.state)
    return states


async def test_one_alert_per_transition_by_webhook_and_mail(
    store: Store, receivers: tuple[WebhookReceiver, SmtpReceiver]
) -> None:
    webhook, smtp = receivers
    alerter = Alerter(alert_settings(receivers))
    await alerter.start()
    try:
        states = await feed(
            store, alerter, [State.UP, State.DOWN, State.DOWN, State.DOWN, State.UP, State.UP]
        )
        assert states == [State.UP, State.UP, State.DOWN, State.DOWN, State.UP, State.UP]
        posts = await webhook.wait_for_posts(2)
        mails = await smtp.wait_for_messages(2)
        assert await alerter.flush(timeout_s=10)
    finally:
        await alerter.stop(drain_timeout_s=10)
    assert len(webhook.posts) == 2 and len(smtp.messages) == 2
    down, recovered = posts
    assert down["title"] == f"DOWN: {DOMAIN}" and "Cause: http_refused" in down["message"]
    assert "connection refused" in down["message"]
    assert "down for 16 min" in recovered["message"]  # DOWN at minute 16, back at minute 32
    assert all(DOMAIN in str(mail["Subject"]) for mail in mails)
    [incident] = await store.list_incidents(domain=DOMAIN)
    assert incident.duration_s == 16 * 60 and incident.cause == "http_refused"


async def test_no_alert_during_a_maintenance_window_but_state_and_incidents_go_on(
    store: Store, receivers: tuple[WebhookReceiver, SmtpReceiver]
) -> None:
    webhook, smtp = receivers
    window = MaintenanceWindow(
        name="database upgrade",
        start=datetime.now(UTC) - timedelta(minutes=5),
        end=datetime.now(UTC) + timedelta(hours=1),
    )
    alerter = Alerter(alert_settings(receivers, window))
    await alerter.start()
    try:
        states = await feed(store, alerter, [State.UP, State.DOWN, State.DOWN, State.UP])
        assert await alerter.flush(timeout_s=10)
    finally:
        await alerter.stop(drain_timeout_s=10)
    assert states == [State.UP, State.UP, State.DOWN, State.UP]
    assert webhook.posts == [] and smtp.messages == []
    assert len(await store.list_incidents(domain=DOMAIN)) == 1
