"""sequra-etl configure: Secret blocks the settings read, and the automation that alerts a person."""

from __future__ import annotations

import pytest
from prefect.automations import Automation
from prefect.blocks.notifications import CustomWebhookNotificationBlock
from prefect.settings import PREFECT_API_URL

from flows.alerts import ALERT_AUTOMATION, ALERT_EVENTS
from flows.cli.main import main
from schemas.settings import Settings, secret_block_value


@pytest.fixture(autouse=True)
def _on_the_test_server(prefect_harness: None, monkeypatch: pytest.MonkeyPatch) -> None:
    """Blocks and automations go to the session's Prefect test server, named as a user would."""
    monkeypatch.setenv("PREFECT_API_URL", str(PREFECT_API_URL.value()))


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


def test_configure_notify_creates_the_automation_for_failed_crashed_late_and_quarantined_runs(
    capsys: pytest.CaptureFixture[str],
) -> None:
    CustomWebhookNotificationBlock(name="ops", url="https://hooks.example.com/ops").save(
        "ops", overwrite=True
    )
    assert main(["configure", "--notify", "ops"]) == 0
    assert main(["configure", "--notify", "ops"]) == 0  # again: replaced, not doubled
    assert f"automation '{ALERT_AUTOMATION}'" in capsys.readouterr().out
    automation = Automation.read(name=ALERT_AUTOMATION)
    assert set(automation.trigger.expect) == set(ALERT_EVENTS)
    assert "prefect.flow-run.Quarantined" in automation.trigger.expect
    assert automation.trigger.match_related["prefect.resource.name"] == [
        "delivery-report",
        "reconciliation",
        "every-merchant",
        "backfill",
    ]
    [action] = automation.actions
    assert action.type == "send-notification"


def test_configure_without_a_prefect_server_is_refused_naming_prefect_api_url(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("PREFECT_API_URL")
    assert main(["configure"]) == 2
    assert "PREFECT_API_URL: is not set" in capsys.readouterr().err
