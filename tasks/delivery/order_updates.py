"""Order updates: tell SeQura, order by order, what changed after an order was reported.

A reported order that changes (a refund, a return, the rest of a split order shipping, a corrected address,
a cancellation) is sent again with `PUT merchants/{merchant}/orders/{order_ref_1}`, carrying its absolute
state: the shipped and unshipped carts as they stand (never a difference), its addresses, buyer, delivery
method and trackings. That makes an update safe to repeat, unlike the delivery report's POST: an update
that got no answer is sent again on the next attempt or the next run, and SeQura ends up holding the same.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson

from schemas.reports import Change, ClassifiedReport, QuarantinedOrder, Stage, UpdatedOrder
from schemas.sequra import Cancellation, Cart, OrderReport, OrderUpdate, Platform, total_shown
from tasks.resources import RunResources
from tasks.sequra_client import (
    LOG,
    SequraClient,
    SequraRejectedError,
    SequraRequestError,
    SequraUnavailableError,
    SequraUnknownOrderError,
)
from tasks.state.locks import renew_lock
from tasks.state.order_changes import UPDATE_REFUSED, UPDATE_UNKNOWN, record_update_refused, record_updated
from tasks.state.privacy import ERASED
from tasks.state.store import StateStore

UNANSWERED_IN_A_ROW = 3  # order updates without an answer, one after the other, that stop a run


# What a merchant calls each part of an order, for the table of updates.
PART_NAMES = (
    ("delivery_address", "delivery address"),
    ("invoice_address", "invoice address"),
    ("customer", "buyer"),
    ("delivery_method", "delivery method"),
    ("trackings", "tracking"),
)


@dataclass
class Unanswered:
    """Order updates SeQura left unanswered one after the other; enough of them stop the run."""

    in_a_row: int = 0

    def count(self, order_ref_1: str, unavailable: SequraUnavailableError, then: str) -> None:
        """Count one; raise SequraUnavailableError, saying `then`, after UNANSWERED_IN_A_ROW in a row."""
        self.in_a_row += 1
        if self.in_a_row >= UNANSWERED_IN_A_ROW:
            raise SequraUnavailableError(
                f"SeQura answered none of {self.in_a_row} order updates in a row (last, order {order_ref_1}: "
                f"{unavailable}); {then}",
                maybe_delivered=False,
            ) from None


@dataclass
class UpdateResult:
    """What became of a chunk's order updates."""

    rows: list[UpdatedOrder] = field(default_factory=list)
    updated: int = 0
    unanswered: int = 0
    quarantined: list[QuarantinedOrder] = field(default_factory=list)
    requests: int = 0


# What an order update carries of a shipped order besides its carts; a cancellation has none of them.
PARTS_SENT = ("delivery_method", "delivery_address", "invoice_address", "customer", "trackings")


def order_update(merchant_id: str, report: OrderReport | Cancellation, platform: Platform) -> OrderUpdate:
    """The order update of a built report: its absolute carts, addresses, buyer, delivery and platform.

    A cancellation before shipment carries only its two empty carts.
    """
    update: dict[str, Any] = {
        "merchant": {"id": merchant_id},
        "merchant_reference": report["merchant_reference"],
        "shipped_cart": report["cart"],
        "unshipped_cart": report["remaining_cart"],
    }
    update |= {key: report[key] for key in PARTS_SENT if key in report}  # type: ignore[literal-required]
    update["platform"] = platform
    return update  # type: ignore[return-value]


def order_update_body(merchant_id: str, report: OrderReport | Cancellation, platform: Platform) -> bytes:
    """The JSON body of PUT merchants/{merchant}/orders/{order_ref_1}."""
    return orjson.dumps({"order": order_update(merchant_id, report, platform)})


def _is_empty(cart: Mapping[str, object]) -> bool:
    """True for a cart with no items."""
    return not cart.get("items")


def _cart_change(name: str, before: Mapping[str, Any], now: Cart) -> list[str]:
    """How a cart changed, in words: `shipped 99.99 → 74.99 EUR`, or `shipped: items`; [] if it did not."""
    if before.get("order_total_with_tax") != now["order_total_with_tax"]:
        was = total_shown(before).removesuffix(" " + now["currency"])  # type: ignore[arg-type]
        return [f"{name} {was} → {total_shown(now)}"]
    return [f"{name}: items"] if before.get("items") != now["items"] else []


def describe_change(previous: Mapping[str, object], current: OrderReport) -> str:
    """What changed since the last report or update, in a merchant's words.

    E.g. `shipped 99.99 → 74.99 EUR`, `still to ship: items`, `second part shipped`, `cancelled`.
    """
    before_shipped, before_unshipped = previous.get("cart", {}), previous.get("remaining_cart", {})
    assert isinstance(before_shipped, dict) and isinstance(before_unshipped, dict)
    shipped, unshipped = current["cart"], current["remaining_cart"]
    if _is_empty(shipped) and _is_empty(unshipped):
        parts = ["cancelled (nothing kept)"]
    else:
        shipped_more = len(shipped["items"]) > len(before_shipped.get("items", []))
        parts = ["second part shipped"] if shipped_more and not _is_empty(before_unshipped) else []
        parts += _cart_change("shipped", before_shipped, shipped)
        parts += _cart_change("still to ship", before_unshipped, unshipped)
    parts += [label for key, label in PART_NAMES if previous.get(key) not in (current.get(key), ERASED)]
    erased = [label for key, label in PART_NAMES if previous.get(key) == ERASED]
    if erased:  # STATE_RETENTION_DAYS or sequra-etl forget left only the fingerprint to say they changed
        parts.append(f"{', '.join(erased)} not compared (erased from the state store)")
    return ", ".join(parts) or "order details"


def what_changed(item: ClassifiedReport, previous: Mapping[str, bytes]) -> str:
    """What an update tells SeQura, against the payload it last acknowledged (`previous`, by order_ref_1)."""
    if item.change is Change.UNCHANGED:
        return "sent again: the last update got no answer"
    return describe_change(orjson.loads(previous.get(item.built.order_ref_1, b"{}")), item.built.report)


@dataclass
class OrderUpdateLoader:
    """Sends one chunk's order updates, one request each, recording every answer in the state store.

    An update SeQura does not answer (after the client's retries) waits in the state store for the next
    run and the others go on; only after UNANSWERED_IN_A_ROW such updates in a row does the run stop, as
    SeQura is then down rather than troubled by one order.
    """

    client: SequraClient
    store: StateStore
    run_id: str
    merchant: str
    platform: Platform
    log: logging.Logger | logging.LoggerAdapter = LOG
    unanswered: Unanswered = field(default_factory=Unanswered)

    def load(
        self, changed: Sequence[ClassifiedReport], previous: Mapping[str, bytes], held: set[str]
    ) -> UpdateResult:
        """Send each order's update; a refusal quarantines that order and never stops the others.

        `changed` holds the changed orders, and the unchanged ones whose last update may have reached SeQura
        unanswered (sent again as they stand). `previous` holds the payload SeQura last acknowledged per
        order_ref_1; `held`, the orders whose update SeQura already refused as it stands, not sent again.
        """
        result = UpdateResult()
        for item in changed:
            built = item.built
            changes = what_changed(item, previous)
            if built.order_ref_1 in held:
                result.rows.append(update_row(item, changes, "held: SeQura refused this update before"))
                continue
            result.requests += 1
            renew_lock(self.store, self.merchant, self.run_id)
            result.rows.append(update_row(item, changes, self._send(item, changes, result)))
        return result

    def _send(self, item: ClassifiedReport, changes: str, result: UpdateResult) -> str:
        """PUT one update and record SeQura's answer; returns the answer in words."""
        built = item.built
        body = order_update_body(self.merchant, built.report, self.platform)
        try:
            status = self.client.update_order(built.order_ref_1, body)
        except SequraUnavailableError as unavailable:
            return self._unanswered(built.order_ref_1, unavailable, result)
        except SequraUnknownOrderError:
            reason = (
                f"SeQura does not know order {built.order_ref_1} for merchant {self.merchant} (404): check "
                "that it was paid with SeQura under this merchant id (SEQURA_MERCHANT_ID); then run "
                f"`sequra-etl release {built.order_ref_1}` to send the update again, or add --resend to "
                "report the order again as new if SeQura never had its report"
            )
            self._refused(item, reason, UPDATE_UNKNOWN, result)
            return "SeQura does not know this order (404)"
        except (SequraRejectedError, SequraRequestError) as refused:
            reason = f"SeQura refused the update ({refused.status}): " + "; ".join(refused.errors)
            self._refused(
                item,
                f"{reason}; it is sent again when the order changes, or after "
                f"`sequra-etl release {built.order_ref_1}`",
                UPDATE_REFUSED,
                result,
            )
            return reason
        self.unanswered.in_a_row = 0
        record_updated(self.store, self.run_id, self.merchant, [built])
        result.updated += 1
        self.log.info("order update %s (%s): accepted (%d)", built.order_ref_1, changes, status)
        return f"accepted ({status})"

    def _unanswered(self, order_ref_1: str, unavailable: SequraUnavailableError, result: UpdateResult) -> str:
        """Leave an unanswered update waiting for the next run; stop the run if SeQura seems down."""
        result.unanswered += 1
        self.unanswered.count(
            order_ref_1,
            unavailable,
            "they wait in the state store and the next run sends them again, which is safe for an update",
        )
        self.log.warning("order update %s got no answer; the next run sends it again", order_ref_1)
        return "no answer from SeQura: the next run sends it again"

    def _refused(self, item: ClassifiedReport, reason: str, outcome: str, result: UpdateResult) -> None:
        """Quarantine the order with SeQura's answer and hold its change back."""
        entry = self._quarantined(item, reason)
        record_update_refused(self.store, self.run_id, self.merchant, entry, outcome)
        result.quarantined.append(entry)

    @staticmethod
    def _quarantined(item: ClassifiedReport, reason: str) -> QuarantinedOrder:
        """A quarantine entry for an order whose update was not accepted."""
        built = item.built
        return QuarantinedOrder(built.reference, built.order_ref_1, built.id_orders, Stage.UPDATE, reason)


def update_row(item: ClassifiedReport, changes: str, result: str) -> UpdatedOrder:
    """The table row of one order update."""
    built = item.built
    return UpdatedOrder(built.reference, built.order_ref_1, built.id_orders, changes, result)


def send_order_updates(
    resources: RunResources,
    run_id: str,
    platform: Platform,
    changed: Sequence[ClassifiedReport],
    previous: Mapping[str, bytes],
    held: set[str],
    log: logging.Logger | logging.LoggerAdapter = LOG,
) -> UpdateResult:
    """PUT the changed orders' updates to SeQura; records each answer in the state store."""
    loader = OrderUpdateLoader(resources.sequra(), resources.store, run_id, resources.merchant, platform, log)
    return loader.load(changed, previous, held)


def updates_to_send(changed: Sequence[ClassifiedReport], previous: Mapping[str, bytes]) -> list[UpdatedOrder]:
    """The table rows of a dry run's order updates: what would change, nothing sent."""
    return [update_row(item, what_changed(item, previous), "dry run: not sent") for item in changed]
