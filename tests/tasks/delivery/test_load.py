from __future__ import annotations

from collections.abc import Sequence

import orjson
import pytest
import requests
from pydantic import SecretStr

from sandbox.server import SandboxServer
from schemas.reports import BuiltReport, Stage
from schemas.sequra import Statistics
from tasks.delivery.load import DeliveryReportLoader, delivery_report_body, errors_naming
from tasks.delivery.statistics import StatisticsBlock
from tasks.sequra_client import HttpSequraClient, SequraClient, SequraRejectedError, SequraUnavailableError
from tests.cases import PLATFORM, built_report

MERCHANT = "demo_merchant"
STATISTICS: Statistics = {
    "orders": [
        {
            "completed_at": "2026-11-20T10:00:00+01:00",
            "amount": 1000,
            "currency": "EUR",
            "payment_method": "SQ",
            "status": "shipped",
        }
    ]
}


@pytest.fixture
def server(sandbox_server: SandboxServer) -> SandboxServer:
    requests.post(sandbox_server.url + "_sandbox/reset", timeout=5).raise_for_status()
    return sandbox_server


class ListLedger:
    """A ledger that keeps, in order, what the loader noted."""

    def __init__(self) -> None:
        self.notes: list[tuple[str, list[str]]] = []

    def sending(self, batch: Sequence[BuiltReport]) -> None:
        self.notes.append(("sending", [built.order_ref_1 for built in batch]))

    def sent(self, batch: Sequence[BuiltReport]) -> None:
        self.notes.append(("sent", [built.order_ref_1 for built in batch]))

    def not_sent(self, batch: Sequence[BuiltReport]) -> None:
        self.notes.append(("not_sent", [built.order_ref_1 for built in batch]))

    def of(self, kind: str) -> list[list[str]]:
        return [refs for note, refs in self.notes if note == kind]


def loader(
    server: SandboxServer, ledger: ListLedger, batch_size: int = 5000, **client: float
) -> DeliveryReportLoader:
    options = {"backoff_seconds": 0.01, **client}
    http = HttpSequraClient(server.url, "demo", SecretStr("demo-secret"), MERCHANT, **options)
    return DeliveryReportLoader(http, MERCHANT, PLATFORM, ledger, batch_size)


def accepted_refs(server: SandboxServer) -> list[str]:
    return [o["order_ref_1"] for o in requests.get(server.url + "_sandbox/orders", timeout=5).json()]


def reject(server: SandboxServer, refs: list[str], *, named: bool) -> None:
    requests.post(
        server.url + "_sandbox/faults", json={"reject_refs": refs, "name_rejected_orders": named}, timeout=5
    ).raise_for_status()


def test_each_acknowledged_batch_is_committed_as_it_is_sent(server: SandboxServer) -> None:
    ledger = ListLedger()
    result = loader(server, ledger, batch_size=2).load([built_report(f"REF{i}") for i in range(5)])
    assert ledger.notes == [
        ("sending", ["REF0", "REF1"]),
        ("sent", ["REF0", "REF1"]),
        ("sending", ["REF2", "REF3"]),
        ("sent", ["REF2", "REF3"]),
        ("sending", ["REF4"]),
        ("sent", ["REF4"]),
    ]
    assert result.requests == 3
    assert accepted_refs(server) == [f"REF{i}" for i in range(5)]


def test_orders_named_in_a_conflict_are_quarantined_and_the_rest_sent(server: SandboxServer) -> None:
    reject(server, ["BAD"], named=True)
    ledger = ListLedger()
    result = loader(server, ledger).load([built_report(r) for r in ("OK1", "BAD", "OK2")])
    assert ledger.of("not_sent") == [["OK1", "BAD", "OK2"]]
    assert ledger.of("sent") == [["OK1", "OK2"]]
    assert [q.order_ref_1 for q in result.quarantined] == ["BAD"]
    assert result.quarantined[0].stage is Stage.LOAD
    assert "SeQura refused it (409)" in result.quarantined[0].reason
    assert accepted_refs(server) == ["OK1", "OK2"]
    assert result.requests == 2


def test_an_anonymous_conflict_is_bisected_down_to_the_bad_order(server: SandboxServer) -> None:
    reject(server, ["BAD5"], named=False)
    refs = [f"GOOD{i}" for i in range(5)] + ["BAD5"] + [f"GOOD{i}" for i in range(6, 8)]
    result = loader(server, ListLedger()).load([built_report(r) for r in refs])
    assert [q.order_ref_1 for q in result.quarantined] == ["BAD5"]
    assert sorted(accepted_refs(server)) == sorted(r for r in refs if r != "BAD5")
    assert result.requests <= 1 + 2 * 3  # one try, then at most two requests per halving level


def test_errors_naming_finds_the_order_phrase_and_ignores_other_numbers() -> None:
    errors = ["Invalid data: order 12: In cart, items add up to 120 but the total is 112. The diff is 8."]
    assert errors_naming("12", errors) == errors
    assert errors_naming("8", errors) == []
    assert errors_naming("ABCDEFGHI", ["ABCDEFGHI has a bad cart"]) == ["ABCDEFGHI has a bad cart"]
    assert errors_naming("ABC", ["ABCDEFGHI has a bad cart"]) == []


class ReportsOnly(SequraClient):
    """A SeQura stand-in for the delivery report's loader, which never sends order updates."""

    def update_order(self, order_ref_1: str, body: bytes) -> int:
        raise AssertionError(f"the delivery report loader sent an order update for {order_ref_1}")


class TooLargeAboveTwo(ReportsOnly):
    """A SeQura stand-in whose proxy refuses bodies of more than two orders with 413."""

    def __init__(self) -> None:
        self.accepted: list[str] = []

    def send_delivery_report(self, body: bytes) -> None:
        orders = orjson.loads(body)["delivery_report"]["orders"]
        if len(orders) > 2:
            raise SequraRejectedError(413, ["Request Entity Too Large"])
        self.accepted += [order["merchant_reference"]["order_ref_1"] for order in orders]


def test_a_payload_refused_as_too_large_is_split_until_it_fits() -> None:
    client = TooLargeAboveTwo()
    ledger = ListLedger()
    result = DeliveryReportLoader(client, MERCHANT, PLATFORM, ledger).load(
        [built_report(f"REF{i}") for i in range(5)]
    )
    assert sorted(client.accepted) == [f"REF{i}" for i in range(5)]
    assert result.quarantined == []
    assert sum(len(batch) for batch in ledger.of("sent")) == 5


def test_a_batch_that_may_have_arrived_unanswered_is_never_posted_again_and_stays_in_flight(
    server: SandboxServer,
) -> None:
    requests.post(server.url + "_sandbox/faults", json={"lose_answer_next": 1}, timeout=5).raise_for_status()
    ledger = ListLedger()

    result = loader(server, ledger, max_attempts=5).load(
        [built_report("LOSTANSWR"), built_report("LOSTANSW2")]
    )

    assert [built.order_ref_1 for built in result.unanswered] == ["LOSTANSWR", "LOSTANSW2"]
    assert ledger.notes == [("sending", ["LOSTANSWR", "LOSTANSW2"])]
    assert (result.requests, result.sent) == (1, [])
    assert accepted_refs(server) == ["LOSTANSWR", "LOSTANSW2"]  # SeQura has them once, from the one POST


def test_a_batch_that_never_left_is_noted_as_not_sent() -> None:
    ledger = ListLedger()
    closed = HttpSequraClient("http://127.0.0.1:9/", "demo", SecretStr("x"), MERCHANT, max_attempts=1)
    with pytest.raises(SequraUnavailableError) as unavailable:
        DeliveryReportLoader(closed, MERCHANT, PLATFORM, ledger).load([built_report("NEVERLEFT")])
    assert unavailable.value.maybe_delivered is False
    assert ledger.notes == [("sending", ["NEVERLEFT"]), ("not_sent", ["NEVERLEFT"])]


class AnsweredLateThenRefused(ReportsOnly):
    """A SeQura stand-in whose first attempt went unanswered and whose retry was refused as a duplicate."""

    def send_delivery_report(self, body: bytes) -> None:
        raise SequraRejectedError(409, ["Invalid data: order ONE: already reported"], maybe_delivered=True)


def test_a_refused_retry_of_an_unanswered_request_is_left_in_flight_instead_of_bisecting() -> None:
    ledger = ListLedger()
    result = DeliveryReportLoader(AnsweredLateThenRefused(), MERCHANT, PLATFORM, ledger).load(
        [built_report("ONE"), built_report("TWO")]
    )
    assert ledger.notes == [("sending", ["ONE", "TWO"])]
    assert result.requests == 1
    assert [built.order_ref_1 for built in result.unanswered] == ["ONE", "TWO"]


class RefusesStatistics(ReportsOnly):
    """A SeQura stand-in that refuses any report carrying statistics, naming no order."""

    def __init__(self) -> None:
        self.reports: list[dict] = []

    def send_delivery_report(self, body: bytes) -> None:
        report = orjson.loads(body)["delivery_report"]
        if "statistics" in report:
            raise SequraRejectedError(409, ["Invalid data: statistics.orders[0].device is wrong"])
        self.reports.append(report)


def test_statistics_refused_by_sequra_never_hold_back_a_shipment() -> None:
    client = RefusesStatistics()
    statistics = StatisticsBlock(lambda: STATISTICS)
    loader = DeliveryReportLoader(client, MERCHANT, PLATFORM, ListLedger(), statistics=statistics)
    result = loader.load([built_report("ONE"), built_report("TWO")])
    assert [b.order_ref_1 for b in result.sent] == ["ONE", "TWO"]
    assert result.quarantined == []
    assert len(client.reports) == 1
    assert statistics.settled  # refused once, the block is not carried again


def test_statistics_are_read_once_and_ride_on_the_first_accepted_request_only(server: SandboxServer) -> None:
    reads: list[str] = []
    statistics = StatisticsBlock(lambda: reads.append("read") or STATISTICS)
    http = HttpSequraClient(server.url, "demo", SecretStr("demo-secret"), MERCHANT, backoff_seconds=0.01)
    loader = DeliveryReportLoader(http, MERCHANT, PLATFORM, ListLedger(), batch_size=1, statistics=statistics)
    loader.load([built_report("ONE"), built_report("TWO")])
    reports = requests.get(server.url + "_sandbox/delivery_reports", timeout=5).json()
    assert ["statistics" in r["body"]["delivery_report"] for r in reports] == [True, False]
    assert reads == ["read"]


def test_the_request_body_carries_each_order_as_built_and_the_statistics_before_the_platform() -> None:
    orders = [built_report("ONE"), built_report("TWO")]
    body = delivery_report_body(MERCHANT, [b.payload for b in orders], {"orders": []}, PLATFORM)
    assert orjson.loads(body) == {
        "delivery_report": {
            "merchant": {"id": MERCHANT},
            "orders": [orjson.loads(b.payload) for b in orders],
            "statistics": {"orders": []},
            "platform": PLATFORM,
        }
    }
    assert orders[0].payload in body and orders[1].payload in body


def test_each_batch_is_logged_with_its_counts_and_no_order_data(
    server: SandboxServer, caplog: pytest.LogCaptureFixture
) -> None:
    reports = [built_report(f"ORDER{n:04d}") for n in range(5)]
    with caplog.at_level("INFO"):
        loader(server, ListLedger(), batch_size=2).load(reports)
    lines = [record.getMessage() for record in caplog.records if record.getMessage().startswith("batch")]
    assert lines == [
        "batch 1/3: 2 accepted, 0 refused, 0 without an answer",
        "batch 2/3: 2 accepted, 0 refused, 0 without an answer",
        "batch 3/3: 1 accepted, 0 refused, 0 without an answer",
    ]
    assert not any("ORDER" in line for line in lines)
