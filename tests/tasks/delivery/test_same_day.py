"""Same-day reporting: scheduled runs every 15 minutes send each shipment once, in the first run after it.

README "Same-day reporting": with SEQURA_SHIPMENT_CHANNEL=order_update, each run's window follows the last
successful run (run_window, as the deployment's schedule makes it) and reads the shop above its high-water
marks. On MariaDB with the real DDL of PrestaShop 1.7.8.1, 8.0 and 9.1.0, orders known to SeQura from
checkout ship between runs, dated at the moment they ship; after every run the sandbox must hold exactly
the orders shipped before it, each from one order update and none from a delivery report.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import requests
from sqlalchemy import Engine

from sandbox.server import SandboxServer
from schemas.prestashop import shop_tables
from schemas.settings import Settings
from seeding.prestashop_ddl import PRESTASHOP_VERSIONS
from tasks.delivery.run import run_window
from tasks.state.store import open_state_store
from tests.clocks import MovedClock
from tests.runs import run_once, settings_for
from tests.shops import MERCHANT, SHIPPED, seeded_shop

pytestmark = pytest.mark.mysql

INTERVAL = timedelta(minutes=15)
SHOP_ZONE = ZoneInfo("Europe/Madrid")  # the seeded shop's PS_TIMEZONE
# Minutes into each interval at which an order ships, run by run: early, and in the minute before the run.
SHIPPING_MINUTES = [(0,), (3, 14), (14,)]


def shop_moment(clock: MovedClock) -> datetime:
    """The clock's moment as the shop writes its dates: shop-local, naive, to the second."""
    return clock.now().astimezone(SHOP_ZONE).replace(tzinfo=None, microsecond=0)


def scheduled_run(settings: Settings, clock: MovedClock) -> None:
    """A run of the schedule at the clock's moment: its window follows the last successful run."""
    store = open_state_store(settings.state_url())
    try:
        window = run_window(store, settings, None, None, clock.now())
    finally:
        store.dispose()
    run_once(settings, window, clock=clock)


def held_by_sequra(sandbox: SandboxServer, references: list[str]) -> dict[str, tuple[int, int]]:
    """(delivery reports, order updates) the sandbox holds for each of `references` it knows a shipment of."""
    held = {}
    for reference in references:
        order = requests.get(f"{sandbox.url}_sandbox/orders/{reference}", timeout=5).json()
        if order["delivery_reports"] or order["order_updates"]:
            held[reference] = (order["delivery_reports"], order["order_updates"])
    return held


@pytest.mark.parametrize("version", PRESTASHOP_VERSIONS)
def test_each_shipment_reaches_sequra_once_in_the_first_run_after_it_shipped(
    mysql_shop_engine_factory: Callable[..., Engine],
    sandbox_server: SandboxServer,
    tmp_path: Path,
    version: str,
) -> None:
    mysql_shop = seeded_shop(mysql_shop_engine_factory(version, "ps_"), shop_tables("ps_"))
    requests.post(sandbox_server.url + "_sandbox/reset", timeout=5).raise_for_status()
    clock = MovedClock()
    placed = shop_moment(clock) - timedelta(days=1)
    references = [f"SAMEDAY{n:02d}" for n in range(6)]
    orders = {reference: mysql_shop.order(reference, placed_at=placed) for reference in references}
    requests.post(
        sandbox_server.url + "_sandbox/checkouts",
        json={"merchant": MERCHANT, "order_refs": references},
        timeout=5,
    ).raise_for_status()
    settings = settings_for(
        mysql_shop.engine,
        f"sqlite:///{tmp_path / 'state.sqlite'}",
        SEQURA_API_URL=sandbox_server.url,
        SEQURA_SHIPMENT_CHANNEL="order_update",
    )
    waiting, shipped = list(references), []  # two of the six never ship
    for run, minutes in enumerate(SHIPPING_MINUTES, start=1):
        moved = 0
        for minute in minutes:
            clock.move((minute - moved) * 60)
            moved = minute
            mysql_shop.writer.set_state(orders[waiting[0]], SHIPPED, at=shop_moment(clock))
            shipped.append(waiting.pop(0))
        clock.move(INTERVAL.total_seconds() - moved * 60)
        scheduled_run(settings, clock)
        assert held_by_sequra(sandbox_server, references) == dict.fromkeys(shipped, (0, 1)), f"run {run}"
    assert requests.get(sandbox_server.url + "_sandbox/orders", timeout=5).json() == []  # none in a report
    mysql_shop.engine.dispose()
