"""The statistics block: every order placed in the 7 days before a run's end, whatever its payment."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Literal

import pandas as pd

from schemas.frames import ShopConfig
from schemas.sequra import OrderStatistics, Statistics, cents
from tasks.delivery.order_rows import OrderRefField, merchant_reference
from tasks.extract.statistics import STATISTICS_PERIOD, extract_recent_orders
from tasks.resources import RunResources
from tasks.rows import Row, records, text_or_none, with_optional
from tasks.window import Window

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


class StatisticsBlock:
    """A run's statistics block: read once, when a request may first carry it, then carried until settled.

    The first request SeQura accepts carries it; one SeQura refuses with it settles it too (statistics are a
    courtesy, never worth holding a shipment back), and the orders go again without it.
    """

    def __init__(self, read: Callable[[], Statistics]) -> None:
        self._read = read
        self._block: Statistics | None = None
        self.settled = False

    def block(self) -> Statistics:
        """The block, read from the shop the first time it is asked for."""
        if self._block is None:
            self._block = self._read()
        return self._block

    def due(self) -> Statistics | None:
        """The block while no request has settled it, else None."""
        return None if self.settled else self.block()

    def settle(self) -> None:
        """Stop carrying the block: a request SeQura accepted (or refused) carried it."""
        self.settled = True
