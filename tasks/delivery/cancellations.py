"""Cancellations before shipment: SeQura orders the shop cancelled without ever shipping them.

SeQura holds such an order as approved and waiting to ship until it hears otherwise; the buyer's instalments
and the merchant's risk depend on it. Each goes once as an order update with both carts empty, as SeQura's
Magento module sends it, noted in flight in the state store before it leaves; SeQura's answers are kept
RECORD_EVERY at a time. One left without an answer, or answered but not yet kept when the run stopped, is
sent again by the next run, which is safe, as an update carries the order's absolute state. SeQura's
404 (it never approved the order, or holds it on review) is final: kept as NOT_AT_SEQURA, shown in the
run's table of updates, and never sent again; the order is reported as new if it ships after all.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field

from schemas.reports import BuiltReport, QuarantinedOrder, Stage, UpdatedOrder
from schemas.sequra import Platform
from tasks.delivery.order_updates import Unanswered, order_update_body
from tasks.resources import RunResources
from tasks.sequra_client import (
    LOG,
    SequraRejectedError,
    SequraRequestError,
    SequraUnavailableError,
    SequraUnknownOrderError,
)
from tasks.state.in_flight import StateLedger, record_sent
from tasks.state.locks import renew_lock
from tasks.state.quarantine import record_quarantine
from tasks.state.snapshots import NOT_AT_SEQURA

CANCELLED_BEFORE_SHIPMENT = "cancelled before shipment"
RECORD_EVERY = 50  # answers kept in one transaction: at most this many are sent again after a run is killed
NOTHING_TO_CANCEL = "SeQura has no approved order of this reference (404): nothing to cancel; not sent again"


@dataclass
class CancellationResult:
    """What became of a chunk's cancellations before shipment."""

    rows: list[UpdatedOrder] = field(default_factory=list)
    cancelled: int = 0  # accepted by SeQura
    not_at_sequra: int = 0  # SeQura answered 404: it holds no approved order to cancel
    unanswered: int = 0  # left in flight: the next run sends them again
    quarantined: list[QuarantinedOrder] = field(default_factory=list)  # refused: held until the order changes
    requests: int = 0


def cancellation_row(built: BuiltReport, result: str) -> UpdatedOrder:
    """The table row of one cancellation before shipment."""
    return UpdatedOrder(
        built.reference, built.order_ref_1, built.id_orders, CANCELLED_BEFORE_SHIPMENT, result
    )


@dataclass
class Answered:
    """The cancellations SeQura answered, accepted or 404, kept in the state store RECORD_EVERY at a time.

    Until then they stay noted in flight: a run stopped before keeping them sends them again, which an
    order update's absolute state makes harmless, and SeQura's 404 is simply heard again.
    """

    accepted: list[BuiltReport] = field(default_factory=list)
    not_at_sequra: list[BuiltReport] = field(default_factory=list)

    def waiting(self) -> int:
        """How many answers are heard and not kept yet."""
        return len(self.accepted) + len(self.not_at_sequra)

    def record(self, ledger: StateLedger) -> None:
        """Keep every answer heard, in one transaction per kind, then forget them; writes the state store."""
        if self.accepted:
            record_sent(ledger.store, ledger.run_id, ledger.merchant, self.accepted, counted="updated_count")
            self.accepted = []
        if self.not_at_sequra:
            record_sent(
                ledger.store, ledger.run_id, ledger.merchant, self.not_at_sequra, NOT_AT_SEQURA, counted=""
            )
            self.not_at_sequra = []


@dataclass
class CancellationSender:
    """Sends one chunk's cancellations before shipment, one order update each, recording every answer."""

    resources: RunResources
    ledger: StateLedger
    platform: Platform
    log: logging.Logger | logging.LoggerAdapter = LOG
    unanswered: Unanswered = field(default_factory=Unanswered)

    def send(self, cancellations: Sequence[BuiltReport]) -> CancellationResult:
        """Note the cancellations in flight, then PUT each; writes the state store."""
        result = CancellationResult()
        if not cancellations:
            return result
        ledger = self.ledger
        ledger.sending(cancellations)
        answered = Answered()
        try:
            for built in cancellations:
                result.requests += 1
                renew_lock(ledger.store, ledger.merchant, ledger.run_id)
                result.rows.append(cancellation_row(built, self._send(built, result, answered)))
                if answered.waiting() >= RECORD_EVERY:
                    answered.record(ledger)
        finally:
            answered.record(ledger)
        record_quarantine(ledger.store, ledger.run_id, ledger.merchant, result.quarantined)
        return result

    def _send(self, built: BuiltReport, result: CancellationResult, answered: Answered) -> str:
        """PUT one cancellation and note SeQura's answer in `answered`; returns the answer in words."""
        ledger = self.ledger
        body = order_update_body(ledger.merchant, built.report, self.platform)
        try:
            status = self.resources.sequra().update_order(built.order_ref_1, body)
        except SequraUnavailableError as unavailable:
            self.unanswered.count(
                built.order_ref_1,
                unavailable,
                "the cancellations without an answer stay in flight and the next run sends them again",
            )
            result.unanswered += 1
            return "no answer from SeQura: the next run sends it again"
        except SequraUnknownOrderError:
            answered.not_at_sequra.append(built)
            result.not_at_sequra += 1
            self.log.warning("order %s: %s", built.order_ref_1, NOTHING_TO_CANCEL)
            return NOTHING_TO_CANCEL
        except (SequraRejectedError, SequraRequestError) as refused:
            ledger.not_sent([built])
            reason = f"SeQura refused its cancellation ({refused.status}): " + "; ".join(refused.errors)
            result.quarantined.append(
                QuarantinedOrder(
                    built.reference,
                    built.order_ref_1,
                    built.id_orders,
                    Stage.UPDATE,
                    f"{reason}; check the order in SeQura's back office (an order on review cannot be "
                    "cancelled until SeQura decides); it is sent again when the order changes in the shop",
                )
            )
            return reason
        self.unanswered.in_a_row = 0
        answered.accepted.append(built)
        result.cancelled += 1
        self.log.info("order %s: cancellation before shipment accepted (%d)", built.order_ref_1, status)
        return f"accepted ({status})"


def send_cancellations(
    resources: RunResources,
    run_id: str,
    platform: Platform,
    cancellations: Sequence[BuiltReport],
    log: logging.Logger | logging.LoggerAdapter = LOG,
) -> CancellationResult:
    """Tell SeQura of the orders cancelled before they shipped; writes the state store.

    Each is sent once, and again only if the run stopped before its answer was kept (RECORD_EVERY).
    """
    ledger = StateLedger(resources.store, run_id, resources.merchant)
    return CancellationSender(resources, ledger, platform, log).send(cancellations)
