"""The statistics block goes to SeQura once a shop-local day: with the first shipments, or alone if none.

Real runs on a MariaDB shop (PrestaShop 8.0 DDL, the quiet day on 1.7.8.1 and 9.1.0 too; Europe/Madrid)
against the sandbox, the state store's clock moved to the moment each run is said to start.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import requests
from sqlalchemy import Engine, update

from sandbox.server import SandboxServer
from schemas.prestashop import shop_tables
from schemas.settings import Settings
from seeding.prestashop_ddl import PRESTASHOP_VERSIONS
from tasks.delivery.run import DeliveryRun
from tasks.delivery.summary import DeliverySummary
from tasks.resources import RunResources
from tasks.window import Window
from tests.clocks import MovedClock
from tests.runs import settings_for
from tests.shops import MERCHANT, SINCE, UNTIL, Shop, seeded_shop

pytestmark = pytest.mark.mysql

DAY = datetime(2026, 11, 21, 10, 0, tzinfo=UTC)  # 11:00 in Madrid; the shop's order was placed 3 days before
Report = tuple[list[str], int | None]  # the orders of a report SeQura accepted, and its statistics' orders


@pytest.fixture
def sandbox(sandbox_server: SandboxServer) -> SandboxServer:
    requests.post(sandbox_server.url + "_sandbox/reset", timeout=5).raise_for_status()
    return sandbox_server


def settings(shop: Shop, sandbox: SandboxServer, tmp_path: Path, **overrides: str) -> Settings:
    """Settings for runs of the shop against the sandbox, with a state store of their own."""
    state_url = f"sqlite:///{tmp_path / 'state.sqlite'}"
    return settings_for(shop.engine, state_url, SEQURA_API_URL=sandbox.url, **overrides)


def run_at(settings: Settings, moment: datetime, window: Window | None = None) -> DeliverySummary:
    """One real run at `moment` by the store's clock, over the 6 hours before it unless `window` is given."""
    clock = MovedClock(ahead=moment - datetime.now(UTC))
    with RunResources.open(settings, clock=clock) as resources:
        return DeliveryRun(resources, window or Window(moment - timedelta(hours=6), moment)).run()


def new_reports(sandbox: SandboxServer, seen: list[Report]) -> list[Report]:
    """The reports SeQura accepted since `seen` was last filled: their orders and statistics' orders."""
    bodies = requests.get(sandbox.url + "_sandbox/delivery_reports", timeout=5).json()
    reports = [report["body"]["delivery_report"] for report in bodies]
    every = [
        (
            [order["merchant_reference"]["order_ref_1"] for order in report["orders"]],
            len(report["statistics"]["orders"]) if "statistics" in report else None,
        )
        for report in reports
    ]
    new = every[len(seen) :]
    seen[:] = every
    return new


@pytest.mark.parametrize("version", PRESTASHOP_VERSIONS)
def test_a_quiet_day_sends_the_statistics_alone_once_a_shop_local_day(
    mysql_shop_engine_factory: Callable[..., Engine], sandbox: SandboxServer, tmp_path: Path, version: str
) -> None:
    mysql_shop = seeded_shop(mysql_shop_engine_factory(version, "ps_"), shop_tables("ps_"))
    mysql_shop.order("PLACED001")  # placed, never shipped: nothing to report, one order for the statistics
    quiet = settings(mysql_shop, sandbox, tmp_path)
    seen: list[Report] = []

    first = run_at(quiet, DAY)
    assert (new_reports(sandbox, seen), first.statistics) == (
        [([], 1)],
        "sent in a report of its own (1 order of the last 7 days)",
    )
    later = run_at(quiet, DAY.replace(hour=22))  # 23:00 in Madrid, the same day
    assert (new_reports(sandbox, seen), later.statistics) == ([], "not due: sent today at 11:00 (shop time)")
    next_day = run_at(quiet, DAY.replace(hour=23, minute=30))  # the same day in UTC, 00:30 the next in Madrid
    assert (new_reports(sandbox, seen), next_day.statistics) == (
        [([], 1)],
        "sent in a report of its own (1 order of the last 7 days)",
    )
    assert first.outcome.requests == 1
    mysql_shop.engine.dispose()


def test_the_first_shipments_of_the_day_carry_the_statistics_and_later_ones_do_not(
    mysql_shop: Shop, sandbox: SandboxServer, tmp_path: Path
) -> None:
    runs = settings(mysql_shop, sandbox, tmp_path)
    seen: list[Report] = []
    mysql_shop.shipped_order("MORNING01", at=datetime(2026, 11, 21, 9, 0))  # shop-local
    morning = run_at(runs, DAY)
    mysql_shop.shipped_order("EVENING01", at=datetime(2026, 11, 21, 17, 0))
    evening = run_at(runs, DAY.replace(hour=18))

    assert new_reports(sandbox, seen) == [(["MORNING01"], 1), (["EVENING01"], None)]
    assert (morning.statistics, evening.statistics) == (
        "sent (1 order of the last 7 days)",
        "not due: sent today at 11:00 (shop time)",
    )


def test_statistics_off_send_none_and_a_quiet_day_nothing(
    mysql_shop: Shop, sandbox: SandboxServer, tmp_path: Path
) -> None:
    off = settings(mysql_shop, sandbox, tmp_path, SEQURA_SEND_STATISTICS="false")
    seen: list[Report] = []
    mysql_shop.shipped_order("SHIPPED01", at=datetime(2026, 11, 21, 9, 0))
    shipped = run_at(off, DAY)
    quiet = run_at(off, DAY + timedelta(days=1))

    assert new_reports(sandbox, seen) == [(["SHIPPED01"], None)]
    assert (shipped.statistics, quiet.statistics) == ("off (SEQURA_SEND_STATISTICS)",) * 2


def test_a_backfill_of_last_month_sends_no_statistics(
    mysql_shop: Shop, sandbox: SandboxServer, tmp_path: Path
) -> None:
    runs = settings(mysql_shop, sandbox, tmp_path)
    seen: list[Report] = []
    mysql_shop.shipped_order("BACKFILL1")  # shipped 2026-11-20, placed two days before
    backfill = run_at(runs, UNTIL + timedelta(days=30), Window(SINCE, UNTIL))

    assert new_reports(sandbox, seen) == [(["BACKFILL1"], None)]
    assert backfill.statistics == "not sent: the window ends 2026-11-21 01:00 (shop time), not about now"


def test_statistics_sequra_refuses_are_warned_about_and_sent_by_the_next_run_that_day(
    mysql_shop: Shop, sandbox: SandboxServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    runs = settings(mysql_shop, sandbox, tmp_path)
    seen: list[Report] = []
    mysql_shop.order("PLACED002")
    currency_code(mysql_shop, "E")  # SeQura refuses a statistics row without a 3-letter currency
    refused = run_at(runs, DAY)
    currency_code(mysql_shop, "EUR")
    again = run_at(runs, DAY.replace(hour=12))

    assert new_reports(sandbox, seen) == [([], 1)]
    assert (refused.statistics or "").startswith("refused by SeQura: (409) Invalid data")
    assert "SeQura refused the statistics block (409) Invalid data" in caplog.text
    assert again.statistics == "sent in a report of its own (1 order of the last 7 days)"


def currency_code(shop: Shop, code: str) -> None:
    """Give every currency of the shop this ISO code."""
    with shop.engine.begin() as conn:
        conn.execute(update(shop.tables.currency).values(iso_code=code))


def test_with_the_order_update_channel_the_statistics_go_alone_after_the_shipments_went_as_updates(
    mysql_shop: Shop, sandbox: SandboxServer, tmp_path: Path
) -> None:
    runs = settings(mysql_shop, sandbox, tmp_path, SEQURA_SHIPMENT_CHANNEL="order_update")
    seen: list[Report] = []
    mysql_shop.shipped_order("UPDATED01", at=datetime(2026, 11, 21, 9, 0))
    checkout = {"merchant": MERCHANT, "order_refs": ["UPDATED01"]}
    requests.post(sandbox.url + "_sandbox/checkouts", json=checkout, timeout=5).raise_for_status()
    shipped = run_at(runs, DAY)

    assert new_reports(sandbox, seen) == [([], 1)]
    assert (shipped.counts.sent, shipped.statistics) == (
        1,
        "sent in a report of its own (1 order of the last 7 days)",
    )
