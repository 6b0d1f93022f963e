"""Settling: reports that got no answer, settled by order updates that cannot report an order twice."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from schemas.reports import BuiltReport, QuarantinedOrder, Stage
from schemas.sequra import Platform
from tasks.delivery.order_updates import Unanswered, order_update_body
from tasks.resources import RunResources
from tasks.sequra_client import (
    LOG,
    SequraClient,
    SequraRejectedError,
    SequraRequestError,
    SequraUnavailableError,
    SequraUnknownOrderError,
)
from tasks.state.in_flight import StateLedger, in_flight_since
from tasks.state.locks import renew_lock


@dataclass
class SettleResult:
    """What became of the reports that got no answer, once settled by order updates."""

    settled: list[BuiltReport] = field(default_factory=list)
    quarantined: list[QuarantinedOrder] = field(default_factory=list)
    not_at_sequra: list[BuiltReport] = field(default_factory=list)  # 404: to be reported again
    requests: int = 0


@dataclass
class ReportSettler:
    """Settles reports SeQura may have received without answering, by sending each order as an update.

    An update carries the order's absolute state, so it tells SeQura the shipment whether or not the
    report arrived, and sending it cannot report the order twice. Its answer settles the order: 2xx, SeQura
    holds the shipment (recorded as sent); 404 from a report out longer than `patience`, SeQura has no such
    order, so the report never reached it and may be sent again (`not_at_sequra`, still in flight until
    then); 404 sooner, SeQura may still be processing the report, so the next run asks again; a refusal is
    left to a person (`quarantined`, for the caller to record; the order stays in flight).
    """

    client: SequraClient
    ledger: StateLedger
    platform: Platform
    patience: timedelta
    log: logging.Logger | logging.LoggerAdapter = LOG
    unanswered: Unanswered = field(default_factory=Unanswered)

    def settle(self, reports: Sequence[BuiltReport]) -> SettleResult:
        """Send each report's order as an update and record what its answer settles."""
        result = SettleResult()
        ledger = self.ledger
        out_since = in_flight_since(ledger.store, ledger.merchant, [built.order_ref_1 for built in reports])
        for built in reports:
            result.requests += 1
            renew_lock(ledger.store, ledger.merchant, ledger.run_id)
            self._settle(built, out_since.get(built.order_ref_1), result)
        return result

    def _settle(self, built: BuiltReport, out_since: datetime | None, result: SettleResult) -> None:
        """Settle one order by its update; records the outcome in the state store."""
        ledger = self.ledger
        body = order_update_body(ledger.merchant, built.report, self.platform)
        try:
            self.client.update_order(built.order_ref_1, body)
        except SequraUnknownOrderError:
            if out_since is not None and ledger.store.now() - out_since < self.patience:
                self.log.info(
                    "order %s: SeQura has not got its report yet; the next run asks again", built.order_ref_1
                )
                return
            result.not_at_sequra.append(built)  # the report never reached SeQura: reporting it is safe again
            return
        except (SequraRejectedError, SequraRequestError) as refused:
            entry = _held(
                built,
                f"its delivery report got no answer and SeQura refused the order update sent to settle it "
                f"({refused.status}: {'; '.join(refused.errors)}); SeQura may have the order: check in its "
                f"back office, then run `sequra-etl release {built.order_ref_1}` if it has it, or add "
                "--resend if it has not",
            )
            result.quarantined.append(entry)
            return
        except SequraUnavailableError as unavailable:
            self.unanswered.count(
                built.order_ref_1,
                unavailable,
                "the orders whose report got no answer stay in flight and the next run settles them",
            )
            self.log.warning(
                "order %s: its settling update got no answer; the next run tries again", built.order_ref_1
            )
            return
        self.unanswered.in_a_row = 0
        ledger.sent([built])
        result.settled.append(built)
        self.log.info("order %s: unanswered report settled by an order update", built.order_ref_1)


def unknown_to_sequra(built: BuiltReport) -> QuarantinedOrder:
    """The quarantine entry of a shipment sent as an order update to SeQura, which has no such order."""
    return _held(
        built,
        f"SeQura has no order {built.order_ref_1} (404 to its order update): with SEQURA_SHIPMENT_CHANNEL "
        "order_update a shipment reaches SeQura only for an order it knows from checkout; check "
        "SEQURA_MERCHANT_ID and SEQURA_ORDER_REF_FIELD, or report it with the delivery_report channel",
    )


def _held(built: BuiltReport, reason: str) -> QuarantinedOrder:
    """A quarantine entry for an order whose report got no answer."""
    return QuarantinedOrder(built.reference, built.order_ref_1, built.id_orders, Stage.LOAD, reason)


def settle_unanswered_reports(
    resources: RunResources,
    run_id: str,
    platform: Platform,
    reports: Sequence[BuiltReport],
    log: logging.Logger | logging.LoggerAdapter = LOG,
) -> SettleResult:
    """Settle by order updates the reports SeQura may have received unanswered; writes the state store."""
    if not reports:
        return SettleResult()
    settings = resources.settings
    # A report not answered in four timeouts is not being processed any more; with the order_update
    # channel no report went out, so a 404 to the update is final at once.
    patience = timedelta(seconds=4 * settings.timeout_seconds)
    if settings.shipment_channel == "order_update":
        patience = timedelta(0)
    ledger = StateLedger(resources.store, run_id, resources.merchant)
    return ReportSettler(resources.sequra(), ledger, platform, patience, log).settle(reports)
