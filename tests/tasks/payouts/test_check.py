"""The payout check: what SeQura was told shipped against what its disbursements paid, order by order.

A MariaDB shop on the real PrestaShop DDL reports its orders to the sandbox at a payout clock; the clock moves
on, the sandbox pays (leaving out, paying less, paying unknown orders when told), and check_payouts reads
the disbursements and writes the CSV, whose rows each test reads back whole.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from sandbox.server import SandboxServer
from schemas import state
from schemas.errors import DisbursementFormatError
from schemas.outcomes import DeliveryOutcome
from schemas.payouts import Finding, PayoutFinding
from schemas.prestashop import shop_tables
from schemas.settings import Settings
from seeding.prestashop_ddl import PRESTASHOP_VERSIONS
from seeding.vocabulary import PORTUGAL, Line
from tasks.clock import MovedClock
from tasks.payouts.check import PayoutSummary, check_payouts
from tasks.payouts.read import DisbursementsRead
from tasks.resources import RunResources
from tasks.sequra_client import SequraAuthError, SequraNoDisbursementError, SequraNotSequraError
from tasks.state.store import open_state_store
from tasks.window import Window
from tests.not_sequra import LOGIN_PAGE, Replay, Scripted
from tests.runs import run_once, settings_for
from tests.sandbox.helpers import SandboxClient
from tests.shops import MERCHANT, MORNING, PREPARATION, SHIPPED, SINCE, UNTIL, Shop, seeded_shop

pytestmark = pytest.mark.mysql

OTHER = "demo_merchant_pt"  # the sandbox's second merchant
WINDOW = Window(SINCE, UNTIL, continues=False)  # 20 November, when the orders ship (MORNING, shop-local)
REPORTED = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)  # a Friday: paid in the week to Sunday 29 November
LATER_MORNING = datetime(2026, 12, 2, 10, 0)  # shop-local, a Wednesday: the rest ships, a unit comes back
LATER_WINDOW = Window(datetime(2026, 12, 2, tzinfo=UTC), datetime(2026, 12, 3, tzinfo=UTC), continues=False)
REPORTED_LATER = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)  # paid in the week to Sunday 6 December
FIRST_WEEK, SECOND_WEEK = "2026-11-29", "2026-12-06"  # the to_date of those weeks
FIRST_PAID = datetime(2026, 12, 7, 10, 0, tzinfo=UTC)  # the first week's disbursement is out (6 December)
BOTH_PAID = datetime(2026, 12, 14, 10, 0, tzinfo=UTC)  # the second week's too (13 December)
SHIRTS = Line("Camiseta", "TSHIRT-1", 3, Decimal("10.00"))  # 30.00, and 4.95 shipping: 34.95
SOCKS = Line("Calcetines", "SOCKS-1", 1, Decimal("2.00"))
TOTAL = "17.45"  # the default order of tests.shops: 12.50 and 4.95 shipping
MADRID_MORNING = "2026-11-20 10:00"  # MORNING as the CSV writes it, in the shop's time zone
DUE = datetime(2026, 11, 22, 23, 0, tzinfo=UTC)  # 23 November 00:00 in Madrid: 7 days before 30 November
HOUR = timedelta(hours=1)


@dataclass
class Payouts:
    """A MariaDB shop, the sandbox as SeQura with its payout clock, a state store, and the check's CSV."""

    shop: Shop
    state_url: str
    sandbox: SandboxClient
    out: Path
    now: datetime = REPORTED

    def settings(self, **overrides: str) -> Settings:
        """This shop, store and sandbox, a grace of 7 days, and `overrides`."""
        return settings_for(
            self.shop.engine,
            self.state_url,
            **{"SEQURA_API_URL": self.sandbox.url, "PAYOUT_GRACE_DAYS": "7", **overrides},
        )

    def report(self, at: datetime = REPORTED, window: Window = WINDOW, **overrides: str) -> DeliveryOutcome:
        """One real run at `at` over `window`, SeQura's payout clock at `at` too; sends to the sandbox."""
        self.pay(at)
        return run_once(self.settings(**overrides), window, clock=MovedClock(at - datetime.now(UTC)))

    def pay(self, at: datetime, **faults: Any) -> None:
        """Move SeQura's payout clock to `at` (what it pays is issued by then) and set its payout faults."""
        self.now = at
        self.sandbox.set_payouts(now=at.isoformat(), **faults)

    def check(self, out: Path | None = None, **overrides: str) -> tuple[PayoutSummary, list[dict[str, str]]]:
        """One payout check at the payout clock's time: its summary and the rows of its CSV."""
        out = out or self.out
        clock = MovedClock(self.now - datetime.now(UTC))
        with RunResources.open(self.settings(**overrides), clock=clock) as resources:
            summary = check_payouts(resources, out)
        with out.open(encoding="utf-8", newline="") as stream:
            return summary, list(csv.DictReader(stream))

    def references(self, merchant: str = MERCHANT) -> dict[str, str]:
        """The reference of each disbursement SeQura lists now for `merchant`, by its to_date."""
        response = self.sandbox.get_api(f"merchants/{merchant}/disbursements", merchant)
        response.raise_for_status()
        return {
            item["disbursement"]["to_date"]: item["disbursement"]["reference"] for item in response.json()
        }

    def kept(self, merchant: str = MERCHANT) -> list[tuple[str, str, int]]:
        """(disbursement, order_ref_1, cents) of every line the store keeps for `merchant`, oldest first."""
        lines, disbursements = state.disbursement_lines, state.disbursements
        query = (
            select(lines.c.disbursement, lines.c.order_ref_1, lines.c.amount_with_tax)
            .join(disbursements, disbursements.c.reference == lines.c.disbursement)
            .where(lines.c.merchant == merchant, disbursements.c.merchant == merchant)
            .order_by(disbursements.c.to_date, lines.c.order_ref_1)
        )
        store = open_state_store(self.state_url)
        try:
            with store.engine.connect() as conn:
                return [(reference, order, int(cents)) for reference, order, cents in conn.execute(query)]
        finally:
            store.dispose()

    def detail_requests(self) -> list[str]:
        """The path of every disbursement detail SeQura was asked for."""
        return [
            entry["path"] for entry in self.sandbox.inspect("requests") if "/disbursements/" in entry["path"]
        ]


def row(
    order_ref_1: str,
    finding: Finding,
    reported: str = "",
    disbursed: str = "",
    shipped_at: str = "",
    disbursements: str = "",
) -> dict[str, str]:
    """A CSV row as the merchant reads it; the difference is worked out here, the advice is the finding's."""
    difference = f"{Decimal(disbursed) - Decimal(reported):.2f}" if reported and disbursed else ""
    advice = PayoutFinding(
        order_ref_1,
        finding,
        int(Decimal(reported) * 100) if reported else None,
        int(Decimal(disbursed) * 100) if disbursed else None,
        "EUR",
        None,
    ).what_to_do()
    return {
        "order_ref_1": order_ref_1,
        "finding": str(finding),
        "reported": reported,
        "disbursed": disbursed,
        "difference": difference,
        "currency": "EUR",
        "shipped_at": shipped_at,
        "disbursements": disbursements,
        "what_to_do": advice,
    }


@pytest.fixture
def payouts(
    mysql_shop_engine_factory: Any, sandbox_server: SandboxServer, tmp_path: Path, request: Any
) -> Iterator[Payouts]:
    """A fresh shop on the 8.0 DDL (or the version the test names), a fresh sandbox and state store."""
    sandbox = SandboxClient(sandbox_server)
    sandbox.reset()
    engine = mysql_shop_engine_factory(getattr(request, "param", "8.0"), "ps_")
    shop = seeded_shop(engine, shop_tables("ps_"))
    yield Payouts(shop, f"sqlite:///{tmp_path / 'state.sqlite'}", sandbox, tmp_path / "payouts.csv")
    engine.dispose()


@pytest.mark.parametrize("payouts", PRESTASHOP_VERSIONS, indirect=True)
def test_an_order_reported_and_left_out_of_the_disbursements_past_the_grace_is_listed_not_paid(
    payouts: Payouts,
) -> None:
    payouts.shop.shipped_order("PAIDORD01")
    payouts.shop.shipped_order("UNPAID01")
    assert payouts.report().counts.sent == 2
    payouts.pay(FIRST_PAID, leave_out=["UNPAID01"])

    summary, rows = payouts.check()

    assert rows == [row("UNPAID01", Finding.NOT_PAID, reported=TOTAL, shipped_at=MADRID_MORNING)]
    assert summary.read == DisbursementsRead(listed=1, new=1, lines=1)
    assert (summary.periods.count, summary.periods.latest_to_date) == (1, date(2026, 11, 29))
    assert summary.timezone == "Europe/Madrid"
    assert (summary.count(Finding.NOT_PAID), summary.found) == (1, 1)
    assert summary.oldest_unpaid is not None and summary.oldest_unpaid.order_ref_1 == "UNPAID01"
    [totals] = summary.totals
    assert (totals.currency, totals.transferred, totals.paid, totals.expected) == ("EUR", 1745, 1745, 3490)


def test_an_order_unpaid_within_the_grace_is_listed_only_once_the_payouts_move_past_it(
    payouts: Payouts,
) -> None:
    payouts.shop.shipped_order("PAIDORD01")
    payouts.shop.shipped_order("UNPAID01")
    payouts.report()
    payouts.shop.shipped_order("PAIDORD02", at=LATER_MORNING)
    payouts.report(REPORTED_LATER, LATER_WINDOW)

    payouts.pay(FIRST_PAID, leave_out=["UNPAID01"])
    within, within_rows = payouts.check(PAYOUT_GRACE_DAYS="14")  # due: shipped before 16 November
    payouts.pay(BOTH_PAID, leave_out=["UNPAID01"])
    past, past_rows = payouts.check(PAYOUT_GRACE_DAYS="14")  # due: shipped before 23 November

    assert (within_rows, within.found, within.oldest_unpaid) == ([], 0, None)
    assert within.periods.latest_to_date == date(2026, 11, 29)
    assert past_rows == [row("UNPAID01", Finding.NOT_PAID, reported=TOTAL, shipped_at=MADRID_MORNING)]
    assert past.periods.latest_to_date == date(2026, 12, 6)
    assert past.read == DisbursementsRead(listed=2, new=1, lines=1)
    assert (past.count(Finding.NOT_PAID), past.found) == (1, 1)
    assert past.oldest_unpaid is not None and past.oldest_unpaid.order_ref_1 == "UNPAID01"


def test_an_order_paid_less_than_reported_is_listed_with_the_difference_and_its_disbursement(
    payouts: Payouts,
) -> None:
    payouts.shop.shipped_order("PAIDORD01")
    payouts.shop.shipped_order("SHORTPAID")
    payouts.report()
    payouts.pay(FIRST_PAID, pay_less={"SHORTPAID": 100})

    summary, rows = payouts.check()

    disbursement = payouts.references()[FIRST_WEEK]
    assert rows == [
        row("SHORTPAID", Finding.PAID_DIFFERS, TOTAL, "16.45", MADRID_MORNING, disbursement),
    ]
    assert rows[0]["difference"] == "-1.00"
    assert (summary.count(Finding.PAID_DIFFERS), summary.found, summary.oldest_unpaid) == (1, 1, None)
    assert [(part.currency, part.orders, part.amount) for part in summary.at_stake] == [("EUR", 1, -100)]


def test_an_order_paid_and_never_reported_is_listed_with_the_amount_disbursed(payouts: Payouts) -> None:
    payouts.shop.shipped_order("PAIDORD01")
    payouts.report()
    payouts.pay(FIRST_PAID, pay_unknown=[{"order_ref_1": "NEVERSENT", "amount_with_tax": 2000}])

    summary, rows = payouts.check()

    disbursement = payouts.references()[FIRST_WEEK]
    assert rows == [
        row("NEVERSENT", Finding.PAID_NOT_REPORTED, disbursed="20.00", disbursements=disbursement)
    ]
    assert (summary.count(Finding.PAID_NOT_REPORTED), summary.found, summary.oldest_unpaid) == (1, 1, None)
    [totals] = summary.totals
    assert (totals.transferred, totals.paid, totals.expected) == (3745, 3745, 1745)


def test_an_order_paid_in_two_disbursements_that_add_up_is_not_listed(payouts: Payouts) -> None:
    shop = payouts.shop
    shop.shipped_order("SPLIT01", lines=[SHIRTS])
    rest = shop.order("SPLIT01", lines=[SOCKS])
    shop.writer.set_state(rest, PREPARATION, at=MORNING)
    payouts.report()
    shop.writer.set_state(rest, SHIPPED, at=LATER_MORNING)
    assert payouts.report(REPORTED_LATER, LATER_WINDOW).counts.updated == 1
    payouts.pay(BOTH_PAID)

    summary, rows = payouts.check()

    paid = payouts.references()
    assert payouts.kept() == [(paid[FIRST_WEEK], "SPLIT01", 3495), (paid[SECOND_WEEK], "SPLIT01", 695)]
    assert (rows, summary.found) == ([], 0)
    assert summary.read == DisbursementsRead(listed=2, new=2, lines=2)
    [totals] = summary.totals
    assert (totals.transferred, totals.paid, totals.expected) == (4190, 4190, 4190)


def test_a_return_after_payment_taken_back_in_the_next_disbursement_is_not_listed(payouts: Payouts) -> None:
    id_order = payouts.shop.shipped_order("RETURN01", lines=[SHIRTS])
    payouts.report()
    payouts.pay(FIRST_PAID)
    first, first_rows = payouts.check()
    payouts.shop.writer.refund(id_order, product_reference="TSHIRT-1", quantity=1, at=LATER_MORNING)
    assert payouts.report(REPORTED_LATER, LATER_WINDOW).counts.updated == 1
    payouts.pay(BOTH_PAID)

    summary, rows = payouts.check()

    paid = payouts.references()
    assert (first_rows, first.found) == ([], 0)
    assert payouts.kept() == [(paid[FIRST_WEEK], "RETURN01", 3495), (paid[SECOND_WEEK], "RETURN01", -1000)]
    assert (rows, summary.found) == ([], 0)
    assert summary.read == DisbursementsRead(listed=2, new=1, lines=1)
    [totals] = summary.totals
    assert (totals.transferred, totals.paid, totals.expected) == (2495, 2495, 2495)


def test_a_return_or_a_rest_shipped_within_the_grace_is_not_listed_before_sequra_pays_the_change(
    payouts: Payouts,
) -> None:
    shop = payouts.shop
    returned = shop.shipped_order("RETURN01", lines=[SHIRTS])
    shop.shipped_order("SPLIT01", lines=[SHIRTS])
    rest = shop.order("SPLIT01", lines=[SOCKS])
    shop.writer.set_state(rest, PREPARATION, at=MORNING)
    shop.shipped_order("SHORTPAID")
    payouts.report()
    shop.writer.refund(returned, product_reference="TSHIRT-1", quantity=1, at=LATER_MORNING)
    shop.writer.set_state(rest, SHIPPED, at=LATER_MORNING)
    assert payouts.report(REPORTED_LATER, LATER_WINDOW).counts.updated == 2
    payouts.pay(FIRST_PAID, pay_less={"SHORTPAID": 100})  # paid for the week to 29 November only

    summary, rows = payouts.check()  # due: reported before 23 November; the changes came on 2 December

    disbursement = payouts.references()[FIRST_WEEK]
    assert rows == [row("SHORTPAID", Finding.PAID_DIFFERS, TOTAL, "16.45", MADRID_MORNING, disbursement)]
    assert summary.found == 1


def test_a_second_check_reads_no_disbursement_twice_and_writes_the_same_csv(
    payouts: Payouts, tmp_path: Path
) -> None:
    for reference in ("PAIDORD01", "SHORTPAID", "UNPAID01"):
        payouts.shop.shipped_order(reference)
    payouts.report()
    payouts.pay(
        FIRST_PAID,
        leave_out=["UNPAID01"],
        pay_less={"SHORTPAID": 100},
        pay_unknown=[{"order_ref_1": "NEVERSENT", "amount_with_tax": 2000}],
    )
    first, rows = payouts.check()
    asked = payouts.detail_requests()

    again, _ = payouts.check(tmp_path / "again.csv")

    disbursement = payouts.references()[FIRST_WEEK]
    assert rows == [
        row("SHORTPAID", Finding.PAID_DIFFERS, TOTAL, "16.45", MADRID_MORNING, disbursement),
        row("UNPAID01", Finding.NOT_PAID, reported=TOTAL, shipped_at=MADRID_MORNING),
        row("NEVERSENT", Finding.PAID_NOT_REPORTED, disbursed="20.00", disbursements=disbursement),
    ]
    assert len(asked) == 1
    assert payouts.detail_requests() == asked
    assert (first.read, again.read) == (
        DisbursementsRead(listed=1, new=1, lines=3),
        DisbursementsRead(listed=1, new=0, lines=0),
    )
    assert (tmp_path / "again.csv").read_bytes() == payouts.out.read_bytes()
    assert (again.found, again.at_stake, again.totals) == (first.found, first.at_stake, first.totals)


def test_credentials_sequra_refuses_are_named_and_nothing_is_read_or_written(payouts: Payouts) -> None:
    payouts.shop.shipped_order("PAIDORD01")
    payouts.report()
    payouts.pay(FIRST_PAID)

    with pytest.raises(SequraAuthError, match=r"401.*SEQURA_USERNAME and SEQURA_PASSWORD"):
        payouts.check(SEQURA_PASSWORD="not-the-password")

    assert not payouts.out.exists()
    assert (payouts.kept(), payouts.detail_requests()) == ([], [])


def _refused_detail(reference: str) -> Scripted:
    """SeQura's 404 for a disbursement it does not know."""
    body = json.dumps({"errors": [f"Disbursement {reference} not found"]}).encode()
    return Scripted(404, (("Content-Type", "application/json"),), body)


def _login_page(reference: str) -> Scripted:
    """A proxy's login page instead of the detail."""
    status, content_type, body = LOGIN_PAGE
    return Scripted(int(status.split()[0]), (("Content-Type", content_type),), body)


def _detail_without_lines(reference: str) -> Scripted:
    """A detail in a shape with no order lines (no object with order_ref_1 and amount_with_tax)."""
    payout = {"reference": reference, "payments": [{"order": "EARLY01", "amount": 1745}]}
    return Scripted(200, (("Content-Type", "application/json"),), json.dumps({"payout": payout}).encode())


@pytest.mark.parametrize(
    ("answer", "error", "named"),
    [
        pytest.param(
            _refused_detail,
            SequraNoDisbursementError,
            "SeQura has no disbursement {reference} at {path} .*check SEQURA_API_URL and SEQURA_MERCHANT_ID",
            id="404",
        ),
        pytest.param(
            _login_page, SequraNotSequraError, "GET http://.*{path} was 200 with text/html", id="html"
        ),
        pytest.param(
            _detail_without_lines,
            DisbursementFormatError,
            "disbursement {reference}: its detail holds no order lines.* an object with keys payout",
            id="no lines",
        ),
    ],
)
def test_a_detail_sequra_does_not_answer_stops_the_check_and_keeps_the_disbursement_read_before(
    payouts: Payouts, answer: Any, error: type[Exception], named: str
) -> None:
    payouts.shop.shipped_order("EARLY01")
    payouts.report()
    payouts.shop.shipped_order("LATE01", at=LATER_MORNING)
    payouts.report(REPORTED_LATER, LATER_WINDOW)
    payouts.pay(BOTH_PAID)
    paid = payouts.references()
    listing = payouts.sandbox.get_api(f"merchants/{MERCHANT}/disbursements")
    path = {item["disbursement"]["to_date"]: item["disbursement"]["path"] for item in listing.json()}
    early_detail = payouts.sandbox.get_api(path[FIRST_WEEK].lstrip("/"))
    json_answer = (("Content-Type", "application/json"),)

    with Replay() as sequra:
        sequra.answers = {
            f"GET /merchants/{MERCHANT}/disbursements": Scripted(200, json_answer, listing.content),
            f"GET {path[FIRST_WEEK]}": Scripted(200, json_answer, early_detail.content),  # read first: older
            f"GET {path[SECOND_WEEK]}": answer(paid[SECOND_WEEK]),
        }
        with pytest.raises(error, match=named.format(reference=paid[SECOND_WEEK], path=path[SECOND_WEEK])):
            payouts.check(SEQURA_API_URL=sequra.url)

    assert not payouts.out.exists()
    assert payouts.kept() == [(paid[FIRST_WEEK], "EARLY01", 1745)]
    summary, rows = payouts.check()  # SeQura answers again: only the rest is read, LATE01 was paid
    assert (rows, summary.read) == ([], DisbursementsRead(listed=2, new=1, lines=1))


def test_each_merchants_check_sees_only_its_own_disbursements_and_orders(
    payouts: Payouts, tmp_path: Path
) -> None:
    shop = payouts.shop
    by_country = json.dumps({MERCHANT: {"countries": ["ES"]}, OTHER: {"countries": ["PT"]}})
    shop.shipped_order("MADRID01")
    lisbon = shop.new_address(city="Lisboa", postcode="1100-148", id_country=PORTUGAL)
    shop.shipped_order("LISBON01", id_address_delivery=lisbon)
    for merchant in (MERCHANT, OTHER):
        payouts.report(SEQURA_MERCHANTS=by_country, SEQURA_MERCHANT_ID=merchant)
    payouts.pay(
        FIRST_PAID,
        pay_less={"MADRID01": 100},
        leave_out=["LISBON01"],
        pay_unknown=[{"order_ref_1": "STRAY01", "amount_with_tax": 500, "merchant": OTHER}],
    )

    spain, spain_rows = payouts.check(SEQURA_MERCHANTS=by_country, SEQURA_MERCHANT_ID=MERCHANT)
    portugal, portugal_rows = payouts.check(
        tmp_path / "portugal.csv", SEQURA_MERCHANTS=by_country, SEQURA_MERCHANT_ID=OTHER
    )

    spanish, portuguese = payouts.references(MERCHANT)[FIRST_WEEK], payouts.references(OTHER)[FIRST_WEEK]
    assert spain_rows == [row("MADRID01", Finding.PAID_DIFFERS, TOTAL, "16.45", MADRID_MORNING, spanish)]
    assert portugal_rows == [
        row("LISBON01", Finding.NOT_PAID, reported=TOTAL, shipped_at=MADRID_MORNING),
        row("STRAY01", Finding.PAID_NOT_REPORTED, disbursed="5.00", disbursements=portuguese),
    ]
    assert (spain.merchant, spain.read, spain.found) == (MERCHANT, DisbursementsRead(1, 1, 1), 1)
    assert (portugal.merchant, portugal.read, portugal.found) == (OTHER, DisbursementsRead(1, 1, 1), 2)
    assert payouts.kept(MERCHANT) == [(spanish, "MADRID01", 1645)]
    assert payouts.kept(OTHER) == [(portuguese, "STRAY01", 500)]


def test_orders_are_due_from_midnight_in_shop_time_and_the_oldest_unpaid_is_the_first_shipped(
    payouts: Payouts,
) -> None:
    shop = payouts.shop
    shop.shipped_order("PAIDORD01")
    shop.shipped_order("ZOLDEST1")  # shipped first, listed last
    payouts.report()
    shop.shipped_order("BEFOREDUE", at=datetime(2026, 11, 22, 23, 30))  # shop-local: 22:30 UTC
    payouts.report(datetime(2026, 11, 22, 22, 45, tzinfo=UTC), Window(DUE - HOUR, DUE, continues=False))
    shop.shipped_order("AFTERDUE", at=datetime(2026, 11, 23, 0, 30))  # shop-local: 23:30 UTC, after DUE
    payouts.report(datetime(2026, 11, 22, 23, 45, tzinfo=UTC), Window(DUE, DUE + HOUR, continues=False))
    payouts.pay(FIRST_PAID, leave_out=["ZOLDEST1", "BEFOREDUE", "AFTERDUE"])

    summary, rows = payouts.check()

    assert summary.due_before == DUE
    assert rows == [
        row("BEFOREDUE", Finding.NOT_PAID, reported=TOTAL, shipped_at="2026-11-22 23:30"),
        row("ZOLDEST1", Finding.NOT_PAID, reported=TOTAL, shipped_at=MADRID_MORNING),
    ]
    assert summary.oldest_unpaid is not None and summary.oldest_unpaid.order_ref_1 == "ZOLDEST1"
