"""sequra-etl configure: Secret blocks the settings read, and the automations that alert a person."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from prefect import get_client
from prefect.automations import Automation
from prefect.blocks.notifications import CustomWebhookNotificationBlock
from prefect.settings import PREFECT_API_URL, PREFECT_UI_URL, temporary_settings

from flows.alerts import (
    ALERT_AUTOMATION,
    ALERT_EVENTS,
    QUARANTINE_SHARE_AUTOMATION,
    QUARANTINED_TOO_MANY,
    REPORTED,
    SILENCE_AUTOMATION,
    outcome_events,
    ui_address,
)
from flows.cli.main import main
from flows.delivery_report import delivery_report
from schemas.errors import SettingError
from schemas.outcomes import DeliveryCounts, DeliveryOutcome
from schemas.settings import Settings, secret_block_value
from tasks.delivery.summary import DeliverySummary
from tasks.window import Window
from tests.flows.conftest import Pipeline
from tests.shops import SINCE, UNTIL

ALERTS = (ALERT_AUTOMATION, SILENCE_AUTOMATION, QUARANTINE_SHARE_AUTOMATION)


@pytest.fixture(autouse=True)
def _on_the_test_server(prefect_harness: None, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Blocks and automations go to the session's Prefect test server, named as a user would.

    The automations a test created are deleted after it: they would alert on the later tests' runs.
    """
    monkeypatch.setenv("PREFECT_API_URL", str(PREFECT_API_URL.value()))
    yield
    with get_client(sync_client=True) as client:
        for name in ALERTS:
            for automation in client.read_automations_by_name(name=name):
                client.delete_automation(automation.id)


def test_configure_keeps_secrets_in_blocks_that_the_settings_read(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("SEQURA_PASSWORD", "s3cret-from-env")
    monkeypatch.setenv("SHOP_DB_URL", "mysql+pymysql://reader:shop-pw@db/shop")
    assert main(["configure"]) == 0
    printed = capsys.readouterr().out
    assert "SEQURA_PASSWORD=block:sequra-etl-sequra-password" in printed
    assert "s3cret" not in printed and "shop-pw" not in printed
    secret_block_value.cache_clear()
    monkeypatch.setenv("SEQURA_PASSWORD", "block:sequra-etl-sequra-password")
    monkeypatch.setenv("SHOP_DB_URL", "block:sequra-etl-shop-db-url")
    settings = Settings.from_env()
    assert settings.password is not None and settings.password.get_secret_value() == "s3cret-from-env"
    assert settings.shop_db_url is not None and settings.shop_db_url.password == "shop-pw"
    assert "s3cret" not in repr(settings)


def test_a_setting_naming_a_missing_block_is_a_setting_error(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    secret_block_value.cache_clear()
    monkeypatch.setenv("SEQURA_PASSWORD", "block:no-such-block")
    assert main(["state-store"]) == 2
    assert "SEQURA_PASSWORD: names the Secret block 'no-such-block'" in capsys.readouterr().err


def test_configure_notify_creates_the_automations_for_runs_that_need_a_person_silence_and_quarantines(
    capsys: pytest.CaptureFixture[str],
) -> None:
    CustomWebhookNotificationBlock(name="ops", url="https://hooks.example.com/ops").save(
        "ops", overwrite=True
    )
    assert main(["configure", "--notify", "ops"]) == 0
    assert main(["configure", "--notify", "ops"]) == 0  # again: replaced, not doubled
    assert f"automation '{ALERT_AUTOMATION}'" in capsys.readouterr().out
    with get_client(sync_client=True) as client:
        assert [len(client.read_automations_by_name(name=name)) for name in ALERTS] == [1, 1, 1]
    automation = Automation.read(name=ALERT_AUTOMATION)
    assert set(automation.trigger.expect) == set(ALERT_EVENTS)
    assert {"prefect.flow-run.Quarantined", "prefect.flow-run.PayoutsDiffer"} <= automation.trigger.expect
    assert automation.trigger.match_related["prefect.resource.name"] == [
        "delivery-report",
        "reconciliation",
        "every-merchant",
        "backfill",
        "payouts",
    ]
    [action] = automation.actions
    assert action.type == "send-notification"
    silence = Automation.read(name=SILENCE_AUTOMATION).trigger
    assert (silence.posture, silence.within.total_seconds(), silence.for_each) == (
        "Proactive",
        26 * 3600,
        {"prefect.resource.id"},
    )
    assert Automation.read(name=QUARANTINE_SHARE_AUTOMATION).trigger.expect == {QUARANTINED_TOO_MANY}


def test_configure_without_a_prefect_server_is_refused_naming_prefect_api_url(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("PREFECT_API_URL")
    assert main(["configure"]) == 2
    assert "PREFECT_API_URL: is not set" in capsys.readouterr().err


def summary_of(found: int, quarantined: int, *, dry_run: bool = False) -> DeliverySummary:
    """A delivery report's summary with these counts."""
    window = Window(datetime(2026, 11, 1, tzinfo=UTC), datetime(2026, 11, 2, tzinfo=UTC))
    counts = DeliveryCounts(found=found, quarantined=quarantined)
    return DeliverySummary("run", "shop_es", window, dry_run, DeliveryOutcome(counts=counts))


def test_a_run_announces_that_it_reported_and_whether_it_quarantined_more_than_the_share() -> None:
    at_the_share = outcome_events(summary_of(found=20, quarantined=1), Decimal("5"))
    assert [event["event"] for event in at_the_share] == [REPORTED]
    assert at_the_share[0]["resource"]["prefect.resource.id"] == "sequra-etl.merchant.shop_es"
    _, too_many = outcome_events(summary_of(found=3, quarantined=1), Decimal("5"))
    assert too_many["event"] == QUARANTINED_TOO_MANY
    assert too_many["payload"] == {"found": 3, "quarantined": 1, "share": "33.3", "limit": "5"}
    assert [e["event"] for e in outcome_events(summary_of(found=0, quarantined=0), Decimal("0"))] == [
        REPORTED
    ]
    assert outcome_events(summary_of(found=3, quarantined=3, dry_run=True), Decimal("5")) == []


def test_alert_links_go_to_prefect_ui_url_or_else_the_api_address_without_api() -> None:
    assert ui_address() == str(PREFECT_API_URL.value()).removesuffix("/api")
    with temporary_settings({PREFECT_UI_URL: "https://prefect.example.com/"}):
        assert ui_address() == "https://prefect.example.com"
    with (
        temporary_settings({PREFECT_UI_URL: "https://prefect.example.com/{{ x }}"}),
        pytest.raises(SettingError, match=r"^PREFECT_UI_URL: .* is not an http"),
    ):
        ui_address()


@dataclass
class Webhook:
    """A local HTTP server standing for a chat's webhook: it keeps the JSON body of every POST it receives."""

    url: str
    received: list[dict[str, str]]

    def message(self, *parts: str, seconds: float = 60) -> dict[str, str]:
        """The first message received whose subject and body hold every part, waiting up to `seconds`."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            for message in list(self.received):
                if all(part in message["subject"] + "\n" + message["body"] for part in parts):
                    return message
            time.sleep(0.5)
        raise AssertionError(f"no message with {parts} in {seconds:g} s; received {self.received}")


@pytest.fixture
def webhook() -> Iterator[Webhook]:
    """A webhook on a free loopback port, for the whole test."""
    received: list[dict[str, str]] = []

    class Receive(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            """Quiet."""

    server = ThreadingHTTPServer(("127.0.0.1", 0), Receive)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield Webhook(f"http://127.0.0.1:{server.server_port}/hook", received)
    finally:
        server.shutdown()
        server.server_close()


def test_every_alert_reaches_a_real_notification_block_naming_the_merchant_and_linking_to_the_run(
    pipeline: Pipeline, webhook: Webhook, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    CustomWebhookNotificationBlock(
        name="ops-hook", url=webhook.url, json_data={"subject": "{{subject}}", "body": "{{body}}"}
    ).save("ops-hook", overwrite=True)
    monkeypatch.setenv("ALERT_SILENCE_HOURS", "0.004")  # 14.4 s: Prefect's shortest window is 10 s
    monkeypatch.setenv(
        "SEQURA_MERCHANTS", '{"demo_merchant": {"countries": ["ES"]}, "idle_merchant": {"countries": ["PT"]}}'
    )
    assert main(["configure", "--notify", "ops-hook"]) == 0
    printed = capsys.readouterr().out
    assert "watching demo_merchant, idle_merchant from now" in printed
    monkeypatch.delenv("SEQURA_MERCHANTS")
    ui = str(PREFECT_API_URL.value()).removesuffix("/api")
    broken = pipeline.shop.shipped_order("AAAAAAAAA")
    pipeline.shop.set_order(broken, total_paid_tax_incl="99.000000")
    pipeline.shop.shipped_order("BBBBBBBBB")
    window = {"since": SINCE.isoformat(), "until": UNTIL.isoformat()}
    first = delivery_report(**window, return_state=True)
    pipeline.shop.shipped_order("CCCCCCCCC")
    second = delivery_report(**window, return_state=True)  # reported again: the silence starts again
    pipeline.shop.shipped_order("DDDDDDDDD")
    monkeypatch.setenv("SEQURA_PASSWORD", "wrong")
    failed = delivery_report(**window, return_state=True)
    assert failed.is_failed()
    first_run, run, failed_run = (
        f"{ui}/runs/flow-run/{state.state_details.flow_run_id}" for state in (first, second, failed)
    )

    quarantined = webhook.message("is Quarantined", "of merchant demo_merchant", first_run)
    failing = webhook.message("is Failed", "of merchant demo_merchant", "SEQURA_PASSWORD", failed_run)
    too_many = webhook.message(
        "Merchant demo_merchant", "quarantined 1 of the 2 orders it found (50.0%", first_run
    )
    silent = webhook.message(
        "Merchant demo_merchant has had no successful delivery report for 0.004 hours", run
    )
    never = webhook.message("Merchant idle_merchant has had no successful delivery report", f"{ui}/runs")

    assert "It has had none since these alerts were set up" in never["body"]
    shown = (quarantined, failing, too_many, silent, never)
    for message in shown:
        assert "None" not in message["subject"] + message["body"]
    time.sleep(15)  # a window more: each silence is told once, from the last run that reported
    silences = [message["body"] for message in webhook.received if "has had no successful" in message["body"]]
    assert [run in body for body in silences if "Merchant demo_merchant" in body] == [True]
    assert sum("Merchant idle_merchant" in body for body in silences) == 1
    print("\n".join(f"{m['subject']}\n{m['body']}\n" for m in shown))
