"""Load: send the new order reports to SeQura in batches, isolating the orders SeQura refuses.

Which failures are retried: a request that cannot have been processed (no connection made, a 5xx, a 429)
is sent again after a backoff. One that may have been processed without an answer (a timeout or a dropped
connection after it was sent) is never POSTed again: its orders stay noted in flight and are settled by
order updates (tasks/delivery/settle.py), which carry the same state whether or not the report arrived.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

import orjson

from schemas.reports import BuiltReport, QuarantinedOrder, Stage
from schemas.sequra import Platform, Statistics
from tasks.delivery.statistics import StatisticsBlock
from tasks.resources import RunResources
from tasks.rows import in_chunks
from tasks.sequra_client import (
    LOG,
    SequraClient,
    SequraError,
    SequraRejectedError,
    SequraUnavailableError,
)
from tasks.state.in_flight import StateLedger, uncertain_deliveries

Log = logging.Logger | logging.LoggerAdapter


class DeliveryLedger(Protocol):
    """Where the loader notes each batch: about to go, acknowledged, or answered without acceptance."""

    def sending(self, batch: Sequence[BuiltReport]) -> None:
        """Note that `batch` is about to be POSTed."""

    def sent(self, batch: Sequence[BuiltReport]) -> None:
        """Note that SeQura acknowledged `batch`."""

    def not_sent(self, batch: Sequence[BuiltReport]) -> None:
        """Note that SeQura answered `batch` without accepting it."""


@dataclass
class LoadResult:
    """What SeQura accepted and what it refused, order by order."""

    sent: list[BuiltReport] = field(default_factory=list)
    quarantined: list[QuarantinedOrder] = field(default_factory=list)
    # reported without an answer, now or by an earlier run: still in flight, to be settled by order updates
    unanswered: list[BuiltReport] = field(default_factory=list)
    requests: int = 0


def errors_naming(order_ref_1: str, errors: Sequence[str]) -> list[str]:
    """The 409 errors that name this order (as 'order REF'), or as a bare token when REF is not a number."""
    ref = re.escape(order_ref_1)
    phrase = re.compile(rf"\border\W{{0,3}}{ref}(?![\w-])", re.IGNORECASE)
    token = re.compile(rf"(?<![\w-]){ref}(?![\w-])")
    named = [error for error in errors if phrase.search(error)]
    if named or order_ref_1.isdigit():
        return named
    return [error for error in errors if token.search(error)]


@dataclass
class DeliveryReportLoader:
    """Sends order reports for one merchant, noting every batch in a ledger before and after it goes."""

    client: SequraClient
    merchant_id: str
    platform: Platform
    ledger: DeliveryLedger
    batch_size: int = 5000
    statistics: StatisticsBlock | None = None  # the run's, carried by the first request SeQura accepts
    log: Log = LOG

    def load(self, reports: Sequence[BuiltReport]) -> LoadResult:
        """Send every report; a refusal quarantines the orders it names (or bisects to find them) only.

        Logs one line per batch with its counts (`batch 3/10: 5000 accepted`), never an order's data.
        """
        result = LoadResult()
        batches = in_chunks(reports, self.batch_size)
        for number, batch in enumerate(batches, start=1):
            before = (len(result.sent), len(result.quarantined), len(result.unanswered))
            self._send_isolating(batch, result)
            self.log.info(
                "batch %d/%d: %d accepted, %d refused, %d without an answer",
                number,
                len(batches),
                len(result.sent) - before[0],
                len(result.quarantined) - before[1],
                len(result.unanswered) - before[2],
            )
        return result

    def _send_isolating(self, batch: Sequence[BuiltReport], result: LoadResult) -> None:
        """Send `batch`; on a refusal set aside the refused orders and send the others again."""
        if not batch:
            return
        block = self.statistics
        statistics = block.due() if block is not None else None
        try:
            result.requests += 1
            self.ledger.sending(batch)
            self.client.send_delivery_report(
                delivery_report_body(
                    self.merchant_id, [built.payload for built in batch], statistics, self.platform
                )
            )
        except SequraRejectedError as rejected:
            if rejected.maybe_delivered:
                self._unanswered(batch, result, block if statistics is not None else None)
                return
            self.ledger.not_sent(batch)
            named = {built.order_ref_1: errors_naming(built.order_ref_1, rejected.errors) for built in batch}
            refused = [built for built in batch if named[built.order_ref_1]]
            if block is not None and statistics is not None and not refused:
                statistics_refused(block, rejected, self.log)  # a courtesy: never holds a shipment back
                self._send_isolating(batch, result)
            elif refused:
                result.quarantined += [
                    self._refused(built, rejected.status, named[built.order_ref_1]) for built in refused
                ]
                self._send_isolating([built for built in batch if not named[built.order_ref_1]], result)
            elif len(batch) == 1:
                result.quarantined.append(self._refused(batch[0], rejected.status, rejected.errors))
            else:
                middle = len(batch) // 2
                self._send_isolating(batch[:middle], result)
                self._send_isolating(batch[middle:], result)
            return
        except SequraUnavailableError as unavailable:
            if unavailable.maybe_delivered:  # SeQura may have it: never POSTed again, settled by updates
                self._unanswered(batch, result, block if statistics is not None else None)
                return
            self.ledger.not_sent(batch)
            raise
        except SequraError:
            self.ledger.not_sent(batch)
            raise
        self.ledger.sent(batch)
        if block is not None and statistics is not None:
            block.accept()
        result.sent += batch

    @staticmethod
    def _unanswered(
        batch: Sequence[BuiltReport], result: LoadResult, carried: StatisticsBlock | None
    ) -> None:
        """Leave a batch SeQura did not answer in flight, with the statistics block it carried, if any."""
        result.unanswered += batch
        if carried is not None:
            carried.unanswered()

    @staticmethod
    def _refused(built: BuiltReport, status: int, errors: Sequence[str]) -> QuarantinedOrder:
        """A quarantine entry carrying SeQura's own words."""
        return QuarantinedOrder(
            built.reference,
            built.order_ref_1,
            built.id_orders,
            Stage.LOAD,
            f"SeQura refused it ({status}): " + "; ".join(errors),
        )


def delivery_report_body(
    merchant_id: str, orders: Sequence[bytes], statistics: Statistics | None, platform: Platform
) -> bytes:
    """The JSON body of POST orders/delivery_reports, around the orders' own bytes (serialised once)."""
    parts = [b'{"delivery_report":{"merchant":', orjson.dumps({"id": merchant_id}), b',"orders":[']
    parts += [b",".join(orders), b"]"]
    if statistics is not None:
        parts += [b',"statistics":', orjson.dumps(statistics)]
    parts += [b',"platform":', orjson.dumps(platform), b"}}"]
    return b"".join(parts)


def send_delivery_reports(
    resources: RunResources,
    run_id: str,
    platform: Platform,
    reports: Sequence[BuiltReport],
    statistics: StatisticsBlock | None = None,
    log: Log = LOG,
    *,
    absent: bool = False,
) -> LoadResult:
    """POST the new reports to SeQura; notes each batch in the state store before and after it goes.

    Orders an earlier run reported without an answer are not reported again: they come back in
    `unanswered`, with those of this run, to be settled by order updates, unless SeQura said it has none
    of them (`absent`: a 404 to the settling update). With SEQURA_SHIPMENT_CHANNEL order_update, every new
    order goes that way (see shipped_by_update).
    """
    settings, store, merchant = resources.settings, resources.store, resources.merchant
    uncertain = {} if absent else uncertain_deliveries(store, merchant, [b.order_ref_1 for b in reports])
    sendable = [built for built in reports if built.order_ref_1 not in uncertain]
    loader = DeliveryReportLoader(
        client=resources.sequra(),
        merchant_id=merchant,
        platform=platform,
        ledger=StateLedger(store, run_id, merchant),
        batch_size=settings.batch_size,
        statistics=statistics,
        log=log,
    )
    if settings.shipment_channel == "order_update":
        result = shipped_by_update(loader, sendable)
    else:
        result = loader.load(sendable)
    result.unanswered += [built for built in reports if built.order_ref_1 in uncertain]
    return result


def shipped_by_update(loader: DeliveryReportLoader, reports: Sequence[BuiltReport]) -> LoadResult:
    """The order-update channel: note the orders in flight, to go as order updates; POSTs nothing.

    Every shipment then reaches SeQura as an update of the order's absolute state, which no failure can
    double; the statistics block goes in a report of its own at the end of the run (send_statistics_alone).
    """
    result = LoadResult(unanswered=list(reports))
    if reports:
        loader.ledger.sending(reports)
    return result


def statistics_refused(block: StatisticsBlock, rejected: SequraRejectedError, log: Log) -> None:
    """SeQura answered a request carrying the statistics block without accepting it: warn, in its words."""
    words = f"({rejected.status}) " + "; ".join(rejected.errors)
    log.warning("SeQura refused the statistics block %s; the run goes on without it", words)
    block.refuse(words)


def send_statistics_alone(
    resources: RunResources, platform: Platform, block: StatisticsBlock, log: Log = LOG
) -> int:
    """POST the statistics block in a report with no orders, if no request of the run took it; requests made.

    For a run that shipped nothing (or whose shipments went as order updates). SeQura's refusal, or no
    answer at all, is logged and said on the block, never raised: statistics are a courtesy. A report
    left without an answer is not sent again by this run.
    """
    statistics = block.due_alone()
    if statistics is None:
        return 0
    try:
        resources.sequra().send_delivery_report(
            delivery_report_body(resources.merchant, [], statistics, platform)
        )
    except SequraRejectedError as rejected:
        if rejected.maybe_delivered:
            block.unanswered()
        else:
            statistics_refused(block, rejected, log)
        return 1
    except SequraUnavailableError as unavailable:
        log.warning("SeQura did not answer the report of the statistics block: %s", unavailable)
        if unavailable.maybe_delivered:
            block.unanswered()
        else:
            block.unavailable("SeQura did not answer")
        return 1
    block.accept(alone=True)
    return 1
