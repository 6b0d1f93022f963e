"""Load: send the new order reports to SeQura in batches, isolating the orders SeQura refuses."""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE
from sqlalchemy import Engine

from schemas.reports import BuiltReport, QuarantinedOrder, Stage
from schemas.sequra import DeliveryReport, Merchant, Platform
from schemas.settings import Settings
from tasks.sequra_client import LOG, HttpSequraClient, SequraClient, SequraRejectedError
from tasks.state import record_sent

OnSent = Callable[[Sequence[BuiltReport]], None]


@dataclass
class LoadResult:
    """What SeQura accepted and what it refused, order by order."""

    sent: list[BuiltReport] = field(default_factory=list)
    quarantined: list[QuarantinedOrder] = field(default_factory=list)
    requests: int = 0


def batches(reports: Sequence[BuiltReport], size: int) -> list[Sequence[BuiltReport]]:
    """Split the reports into requests of at most `size` orders."""
    return [reports[start : start + size] for start in range(0, len(reports), size)]


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
    """Sends order reports for one merchant, committing each acknowledged batch through `on_sent`."""

    client: SequraClient
    merchant_id: str
    platform: Platform
    on_sent: OnSent
    batch_size: int = 5000

    def load(self, reports: Sequence[BuiltReport]) -> LoadResult:
        """Send every report; a refusal quarantines the orders it names (or bisects to find them) only."""
        result = LoadResult()
        for batch in batches(reports, self.batch_size):
            self._send_isolating(batch, result)
        return result

    def _send_isolating(self, batch: Sequence[BuiltReport], result: LoadResult) -> None:
        """Send `batch`; on a refusal set aside the refused orders and send the others again."""
        if not batch:
            return
        try:
            result.requests += 1
            self.client.send_delivery_report(
                DeliveryReport(
                    merchant=Merchant(id=self.merchant_id),
                    orders=tuple(built.report for built in batch),
                    platform=self.platform,
                )
            )
        except SequraRejectedError as rejected:
            named = {built.order_ref_1: errors_naming(built.order_ref_1, rejected.errors) for built in batch}
            refused = [built for built in batch if named[built.order_ref_1]]
            if refused:
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
        self.on_sent(batch)
        result.sent += batch

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


def sequra_client(settings: Settings, log: logging.Logger | logging.LoggerAdapter = LOG) -> HttpSequraClient:
    """The real SeQura client from the settings, logging its retries to `log`; SettingError if unset."""
    settings.require("username", "password", "merchant_id")
    assert (
        settings.username is not None and settings.password is not None and settings.merchant_id is not None
    )
    return HttpSequraClient(
        settings.api_url,
        settings.username,
        settings.password,
        settings.merchant_id,
        timeout_seconds=settings.timeout_seconds,
        max_attempts=settings.max_attempts,
        backoff_seconds=settings.backoff_seconds,
        log=log,
    )


@task(name="send-delivery-reports", cache_policy=NO_CACHE)
def send_delivery_reports(
    settings: Settings, store: Engine, run_id: str, platform: Platform, reports: Sequence[BuiltReport]
) -> LoadResult:
    """POST the new reports to SeQura; commits each acknowledged batch to the state store."""
    client = sequra_client(settings, get_run_logger())
    merchant = client.merchant_id
    loader = DeliveryReportLoader(
        client=client,
        merchant_id=merchant,
        platform=platform,
        on_sent=lambda batch: record_sent(store, run_id, merchant, batch),
        batch_size=settings.batch_size,
    )
    return loader.load(reports)


def write_delivery_report(
    path: Path, merchant_id: str, platform: Platform, reports: Sequence[BuiltReport]
) -> Path:
    """Write the delivery report that would be sent, as SeQura would receive it; creates the file."""
    report = DeliveryReport(
        merchant=Merchant(id=merchant_id), orders=tuple(built.report for built in reports), platform=platform
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report.body(), ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    return path
