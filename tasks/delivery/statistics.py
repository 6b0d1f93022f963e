"""The statistics block: every order placed in the 7 days before a run's end, whatever its payment."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime, time, timedelta
from typing import Literal
from zoneinfo import ZoneInfo

import pandas as pd

from schemas.frames import ShopConfig
from schemas.sequra import OrderStatistics, Statistics, cents
from tasks.delivery.order_rows import OrderRefField, merchant_reference
from tasks.extract.statistics import STATISTICS_PERIOD, extract_recent_orders
from tasks.resources import RunResources
from tasks.rows import Row, records, text_or_none, with_optional
from tasks.state.runs import statistics_sent_between
from tasks.window import Window, shop_minute

PAYMENT_METHODS = {
    "ps_checkpayment": "TR",
    "ps_wirepayment": "TR",
    "ps_cashondelivery": "COD",
    "paypal": "PP",
    "ps_checkout": "CC",
    "stripe_official": "CC",
    "redsys": "CC",
}


def payment_method(module: str | None, sequra_modules: Sequence[str]) -> str:
    """SeQura's payment method code: SQ for SeQura, CC, PP, TR or COD when known, else O/<module>."""
    if module in sequra_modules:
        return "SQ"
    return PAYMENT_METHODS.get(module or "", f"O/{module or 'unknown'}")


def statistics_status(row: Row, config: ShopConfig) -> Literal["processing", "shipped", "cancelled"]:
    """Cancelled when the order is in the shop's cancelled or error state, shipped once it shipped."""
    if row["current_state"] in config.canceled_states:
        return "cancelled"
    return "shipped" if row["ever_shipped"] else "processing"


def build_statistics(
    recent_orders: pd.DataFrame,
    config: ShopConfig,
    sequra_modules: Sequence[str],
    order_ref_field: OrderRefField = "reference",
) -> Statistics:
    """The statistics block: every order placed in the last 7 days; one without a currency is left out."""
    orders: list[OrderStatistics] = []
    local = recent_orders["placed_at"].dt.tz_convert(config.timezone)
    completed = [None if pd.isna(moment) else moment.isoformat(timespec="seconds") for moment in local]
    for row, completed_at in zip(records(recent_orders), completed, strict=True):
        currency = text_or_none(row["currency_iso"])
        if currency is None or completed_at is None:
            continue
        sequra = row["module"] in sequra_modules and text_or_none(row["reference"]) is not None
        country = text_or_none(row["country_iso"])
        orders.append(
            with_optional(
                {
                    "completed_at": completed_at,
                    "amount": cents(row["total_paid_tax_incl"]),
                    "currency": currency.upper(),
                    "payment_method": payment_method(row["module"], sequra_modules),
                    "status": statistics_status(row, config),
                },
                merchant_reference=merchant_reference([row], order_ref_field) if sequra else None,
                country=country.upper() if country else None,
                raw_status=text_or_none(row["state_name"]),
            )
        )
    return {"orders": orders}


def statistics_of_run(resources: RunResources, config: ShopConfig, window: Window) -> Statistics:
    """The statistics block of a run: the orders placed in the 7 days before its end; reads the shop."""
    settings = resources.settings
    recent = extract_recent_orders(
        resources.shop, resources.tables, config, resources.order_filter, window.until - STATISTICS_PERIOD
    )
    return build_statistics(recent, config, settings.payment_modules, settings.order_ref_field)


def shop_day(moment: datetime, timezone: str) -> tuple[datetime, datetime]:
    """The shop-local day `moment` falls in, as its UTC start and end (23, 24 or 25 hours apart)."""
    zone = ZoneInfo(timezone)
    day = moment.astimezone(zone).date()
    start, end = (datetime.combine(d, time(), zone) for d in (day, day + timedelta(days=1)))
    return start.astimezone(UTC), end.astimezone(UTC)


def why_not_due(resources: RunResources, window: Window, timezone: str) -> str | None:
    """Why a real run sends no statistics, in words, or None when they are due; reads the store.

    Due once a shop-local day (today by the state store's clock): with SEQURA_SEND_STATISTICS on, for a
    run whose window ends within DELIVERY_OVERLAP_MINUTES of now (a scheduled run, or an until of about
    now; a backfill of the past would send old figures as today's), while no run of the merchant has had
    SeQura accept them today.
    """
    settings, store = resources.settings, resources.store
    if not settings.send_statistics:
        return "off (SEQURA_SEND_STATISTICS)"
    now = store.now()
    if abs(now - window.until) > timedelta(minutes=settings.overlap_minutes):
        return f"not sent: the window ends {shop_minute(window.until, timezone)} (shop time), not about now"
    sent = statistics_sent_between(store, resources.merchant, *shop_day(now, timezone))
    if sent is not None:
        return f"not due: sent today at {sent.astimezone(ZoneInfo(timezone)):%H:%M} (shop time)"
    return None


class StatisticsBlock:
    """A run's statistics block: read once, when a request may first carry it, then carried until settled.

    Carried only when due (`not_due` is None, and the block lists an order). The first request SeQura
    accepts carries it, and `accepted` is called; one SeQura refuses with it settles it too (statistics are
    a courtesy, never worth holding a shipment back), and the orders go again without it. One left without
    an answer lets the next request carry it again, but no report of its own follows. `said` tells what
    became of the block, in words, once something did.
    """

    def __init__(
        self,
        read: Callable[[], Statistics],
        not_due: str | None = None,
        accepted: Callable[[], None] = lambda: None,
    ) -> None:
        self._read = read
        self._block: Statistics | None = None
        self._accepted = accepted
        self.said = not_due
        self.settled = not_due is not None

    def block(self) -> Statistics:
        """The block, read from the shop the first time it is asked for."""
        if self._block is None:
            self._block = self._read()
        return self._block

    def due(self) -> Statistics | None:
        """The block while it is due and no request has settled it, else None; an empty one settles it."""
        if self.settled:
            return None
        block = self.block()
        if not block["orders"]:
            self._settle("none to send: no order placed in the last 7 days")
            return None
        return block

    def due_alone(self) -> Statistics | None:
        """The block for a report of its own: while due and no request of the run went without an answer."""
        return self.due() if self.said is None else None

    def accept(self, alone: bool = False) -> None:
        """SeQura accepted a request carrying the block: note it (`accepted`) and stop carrying it."""
        self._accepted()
        self._settle(f"sent{' in a report of its own' if alone else ''} ({self.in_orders()})")

    def refuse(self, words: str) -> None:
        """SeQura answered a request carrying the block without accepting it: stop carrying it."""
        self._settle(f"refused by SeQura: {words}")

    def unanswered(self) -> None:
        """A request carrying the block went without an answer: SeQura may have it, or may not."""
        self.said = "sent without an answer from SeQura; the next run today sends them again"

    def unavailable(self, words: str) -> None:
        """SeQura could not be reached for a report of the block's own: stop trying in this run."""
        self._settle(f"not sent: {words}; the next run today tries again")

    def written(self) -> None:
        """A dry run wrote the block in its file."""
        self._settle(f"in the dry-run file ({self.in_orders()})")

    def in_orders(self) -> str:
        """How many orders the block lists, in words: 1,234 orders of the last 7 days."""
        count = len(self.block()["orders"])
        return f"{count:,} order{'' if count == 1 else 's'} of the last 7 days"

    def _settle(self, said: str) -> None:
        """Stop carrying the block, saying why."""
        self.settled = True
        self.said = said
