"""Big shops: a realistic PrestaShop database of N shipped SeQura orders, bulk-loaded into MariaDB or MySQL.

Rows are generated in the demo shop's vocabulary (its buyers, catalogue, carriers, order states) and written
as PrestaShop writes them: split orders sharing a reference, discounts, gift wrapping, refunds with credit
slips, addresses edited after shipping (the old row soft-deleted), a carrier edited mid-year, histories
through payment, preparation, shipped and delivered, and some orders of other payment modules or not shipped
yet. Orders are generated in shipping order, so ids grow with time, as in a real shop; so do `order_history`
ids, written in the order of their dates as PrestaShop inserts a row when a state changes. Every table is
written to a tab-separated file and loaded with one `LOAD DATA LOCAL INFILE`, which is what makes a million
orders take minutes instead of hours.
"""

from __future__ import annotations

import heapq
import random
import tempfile
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import TextIO

from sqlalchemy import bindparam, func, inspect, select, update
from sqlalchemy.engine import URL, Connection, Engine, create_engine
from sqlalchemy.exc import OperationalError

from schemas.errors import TerminalError
from schemas.prestashop import ShopTables
from schemas.prestashop_types import ZERO_DATETIME
from seeding.prestashop_ddl import create_prestashop_schema
from seeding.vocabulary import (
    BUYERS,
    CANCELED,
    CATALOGUE,
    DELIVERED,
    EUR,
    GBP,
    PAYMENT_ACCEPTED,
    PAYMENT_LABELS,
    PROCESSING_IN_PROGRESS,
    REFUNDED,
    SHIPPED,
    SPANISH,
    Buyer,
)
from seeding.writer import ShopWriter

MERCHANT_ID = "demo_merchant"
BATCH_REFERENCES = 20_000
# Shares of the orders generated, per order reference unless said otherwise.
SPLIT_SHARE = 0.06  # two sub-orders with two carriers; the second ships days later, if it has yet
RETURNING_BUYER_SHARE = 0.4
GUEST_SHARE = 0.1
DELETED_CUSTOMER_SHARE = 0.005
COMPANY_INVOICE_SHARE = 0.03
EDITED_ADDRESS_SHARE = 0.02  # the delivery address is edited after shipping; half the orders follow it
DISCOUNT_SHARE = 0.12
FREE_SHIPPING_SHARE = 0.03
GIFT_SHARE = 0.03
GBP_SHARE = 0.02
DELIVERED_SHARE = 0.8  # of the shipped orders whose delivery time has come
PARTIAL_REFUND_SHARE = 0.03  # of the delivered orders
FULL_REFUND_SHARE = 0.005
UNTRACKED_SHARE = 0.05
MODULE_SENT_SHARE = 0.01  # reported by the PHP module already
OTHER_MODULE_SHARE = 0.05  # extra orders of other payment modules, shipped too
NOT_SHIPPED_SHARE = 0.03  # extra SeQura orders awaiting shipment or cancelled
OTHER_MODULES = ("ps_checkpayment", "ps_wirepayment", "ps_cashondelivery", "paypal")
SIZES = ("XS", "S", "M", "L", "XL", "azul", "negro", "verde")
LINE_COUNTS = (1, 1, 2, 2, 3, 3, 3, 4, 4, 5, 5, 3)  # three lines an order on average
PACKAGE_TAX_RATE = 21
WRAPPING_CENTS = 250
PLACED_HOURS_BEFORE_SHIPPING = (20, 72)  # an order is placed this long before it ships
TOP_UP_MINUTES = 50  # the orders topping up the period ship in its last this many minutes


class BigShopError(TerminalError, ValueError):
    """The database cannot take a generated shop; the message says what to change."""


@dataclass(frozen=True)
class BigShop:
    """What `seed_big_shop` wrote."""

    shipped_orders: int  # SeQura orders (rows of orders) with a shipped state in their history
    shipped_references: int  # their distinct order references
    other_orders: int  # orders of other payment modules, and SeQura orders not shipped
    rows: dict[str, int]  # rows loaded per table
    seconds: float


@dataclass
class _Carrier:
    """A carrier as orders use it: its id before and after its mid-year edit, its shipping cost."""

    ids: tuple[int, int]
    shipping_cents: int
    tracked: bool


@dataclass
class _Buyer:
    """A generated customer: their id, addresses, language and whether they are a guest."""

    id_customer: int
    id_address: int
    template: Buyer


@dataclass
class _Ids:
    """The next free id of every table the generator fills."""

    customer: int
    address: int
    orders: int
    order_detail: int
    order_history: int
    order_carrier: int
    order_cart_rule: int
    order_slip: int
    invoice_number: int
    delivery_number: int
    id_cart: int


def _cell(value: object) -> str:
    """One value as LOAD DATA reads it: NULL as backslash-N; backslash, tab and newline escaped."""
    if value is None:
        return "\\N"
    if value.__class__ is not str:
        return str(value)
    if "\\" in value or "\t" in value or "\n" in value:  # type: ignore[operator]
        return value.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n")  # type: ignore[attr-defined]
    return value  # type: ignore[return-value]


def _money(cents: int) -> str:
    """Integer cents as a decimal(20,6) literal."""
    sign = "-" if cents < 0 else ""
    return f"{sign}{abs(cents) // 100}.{abs(cents) % 100:02d}0000"


def _excl(cents: int, rate: int = PACKAGE_TAX_RATE) -> str:
    """The tax-excluded equivalent of tax-included cents, to six places, as a decimal(20,6) literal."""
    micro = (cents * 10_000 * 100 * 2 + (100 + rate)) // (2 * (100 + rate))
    return f"{micro // 1_000_000}.{micro % 1_000_000:06d}"


def _stamp(moment: datetime) -> str:
    """A shop-local datetime as MySQL reads it."""
    return moment.isoformat(" ", "seconds")


@dataclass(frozen=True)
class _Batch:
    """One tab-separated file of rows of one table, ready for LOAD DATA."""

    table: str
    columns: tuple[str, ...]
    path: Path


class _TableFile:
    """The rows of one table, written to tab-separated files for LOAD DATA, one file per batch."""

    def __init__(self, folder: Path, table: str, columns: str) -> None:
        self.table = table
        self.columns = tuple(columns.split())
        self.rows = 0
        self._folder = folder
        self._batches = 0
        self._path, self._file = self._open()

    def _open(self) -> tuple[Path, TextIO]:
        """A new file for the next batch; creates it."""
        self._batches += 1
        path = self._folder / f"{self.table}.{self._batches}.tsv"
        return path, path.open("w", encoding="utf-8", newline="\n")

    def add(self, *values: object) -> None:
        """Write one row; values in the order of `columns`."""
        self._file.write("\t".join(map(_cell, values)) + "\n")
        self.rows += 1

    def rotate(self) -> _Batch:
        """Close the batch written so far and start the next one."""
        self._file.close()
        batch = _Batch(self.table, self.columns, self._path)
        self._path, self._file = self._open()
        return batch


def _reference(number: int) -> str:
    """A unique order reference of nine uppercase letters, scattered like Order::generateReference's."""
    scrambled = (number * 387_420_489 + 1_234_567) % 26**9  # 3^18 is coprime to 26^9: a bijection
    letters = []
    for _ in range(9):
        scrambled, digit = divmod(scrambled, 26)
        letters.append(chr(65 + digit))
    return "".join(letters)


@dataclass
class _Products:
    """The catalogue's products in sizes and colours: (product_id, reference, name, unit cents, weight)."""

    items: list[tuple[int, str | None, str, int, str]] = field(default_factory=list)

    @classmethod
    def from_catalogue(cls) -> _Products:
        """Every catalogue line in every size or colour, with a stable product id."""
        products = cls()
        for number, line in enumerate(CATALOGUE, start=1):
            for variant, size in enumerate(SIZES):
                cents = int(line.unit_price_tax_incl * 100) + 100 * (variant % 3)
                products.items.append(
                    (
                        number * 100 + variant,
                        f"{line.reference}-{size.upper()}" if line.reference else None,
                        f"{line.name} ({size})",
                        cents,
                        f"{line.weight:f}",
                    )
                )
        return products


class _Generator:
    """Generates the rows of a big shop into table files, reference by reference, in shipping order."""

    def __init__(
        self, folder: Path, tables: ShopTables, ids: _Ids, carriers: Sequence[_Carrier], seed: int
    ) -> None:
        self.rng = random.Random(seed)
        self.ids = ids
        self.carriers = carriers
        self.products = _Products.from_catalogue().items
        self.buyers: list[_Buyer] = []
        self.shipped_orders = 0
        self.shipped_references = 0
        self.other_orders = 0
        self.soft_deleted: list[tuple[int, datetime]] = []  # addresses edited: (id_address, when)
        # order_history rows not written yet, by date: (date_add, place in line, id_employee, id_order, state)
        self.pending_history: list[tuple[datetime, int, int, int, int]] = []
        self.history_rows = 0
        p = tables.prefix
        self.files = {
            "customer": _TableFile(
                folder,
                f"{p}customer",
                "id_customer id_gender id_default_group id_lang firstname lastname email passwd "
                "last_passwd_gen secure_key active is_guest deleted date_add date_upd",
            ),
            "address": _TableFile(
                folder,
                f"{p}address",
                "id_address id_country id_state id_customer alias company lastname firstname address1 "
                "address2 postcode city phone phone_mobile vat_number dni date_add date_upd active deleted",
            ),
            "orders": _TableFile(
                folder,
                f"{p}orders",
                "id_order reference id_shop_group id_shop id_carrier id_lang id_customer id_cart "
                "id_currency id_address_delivery id_address_invoice current_state secure_key payment "
                "conversion_rate module gift gift_message total_discounts total_discounts_tax_incl "
                "total_discounts_tax_excl total_paid total_paid_tax_incl total_paid_tax_excl "
                "total_paid_real total_products total_products_wt total_shipping total_shipping_tax_incl "
                "total_shipping_tax_excl carrier_tax_rate total_wrapping total_wrapping_tax_incl "
                "total_wrapping_tax_excl invoice_number delivery_number invoice_date delivery_date valid "
                "date_add date_upd",
            ),
            "order_detail": _TableFile(
                folder,
                f"{p}order_detail",
                "id_order_detail id_order id_order_invoice id_warehouse id_shop product_id "
                "product_attribute_id product_name product_quantity product_quantity_in_stock "
                "product_quantity_refunded product_price product_reference product_weight "
                "id_tax_rules_group tax_name tax_rate total_price_tax_incl total_price_tax_excl "
                "unit_price_tax_incl unit_price_tax_excl original_product_price total_refunded_tax_incl "
                "total_refunded_tax_excl",
            ),
            "order_history": _TableFile(
                folder, f"{p}order_history", "id_order_history id_employee id_order id_order_state date_add"
            ),
            "order_carrier": _TableFile(
                folder,
                f"{p}order_carrier",
                "id_order_carrier id_order id_carrier weight shipping_cost_tax_excl shipping_cost_tax_incl "
                "tracking_number date_add",
            ),
            "order_cart_rule": _TableFile(
                folder,
                f"{p}order_cart_rule",
                "id_order_cart_rule id_order id_cart_rule id_order_invoice name value value_tax_excl "
                "free_shipping deleted",
            ),
            "order_slip": _TableFile(
                folder,
                f"{p}order_slip",
                "id_order_slip id_customer id_order total_products_tax_excl total_products_tax_incl "
                "total_shipping_tax_excl total_shipping_tax_incl amount partial date_add date_upd",
            ),
            "sequra_order": _TableFile(folder, f"{p}sequra_order", "order_id sent_to_sequra merchant_id"),
        }

    def rotate(self) -> list[_Batch]:
        """The batch of every table written so far, in loading order; the next rows start new files."""
        return [table_file.rotate() for table_file in self.files.values()]

    def _next(self, name: str) -> int:
        """Take the next id of a table or counter."""
        value = getattr(self.ids, name)
        setattr(self.ids, name, value + 1)
        return value

    def buyer(self, at: datetime) -> _Buyer:
        """A returning buyer, or a new customer with an address registered at `at`."""
        rng = self.rng
        if self.buyers and rng.random() < RETURNING_BUYER_SHARE:
            return rng.choice(self.buyers)
        template = BUYERS[rng.randrange(len(BUYERS))]
        surname = BUYERS[rng.randrange(len(BUYERS))].lastname
        id_customer = self._next("customer")
        local, domain = template.email.split("@")
        email = f"{local}.{id_customer}@{domain}"
        is_guest = rng.random() < GUEST_SHARE
        stamp = _stamp(at)
        self.files["customer"].add(
            id_customer,
            0,
            2 if is_guest else 3,
            SPANISH,
            template.firstname,
            surname,
            email,
            f"$2y$10${id_customer:053d}",
            stamp,
            f"{id_customer:032x}",
            1,
            int(is_guest),
            int(rng.random() < DELETED_CUSTOMER_SHARE),
            stamp,
            stamp,
        )
        buyer = _Buyer(id_customer, 0, template._replace(lastname=surname))
        buyer.id_address = self.address(buyer, at)
        self.buyers.append(buyer)
        return buyer

    def address(
        self,
        buyer: _Buyer,
        at: datetime,
        *,
        company: str | None = None,
        street: str | None = None,
        deleted: bool = False,
        updated: datetime | None = None,
    ) -> int:
        """Write an address of `buyer` saved at `at`; return its id_address."""
        t = buyer.template
        id_address = self._next("address")
        number = 1 + buyer.id_customer % 97
        self.files["address"].add(
            id_address,
            t.id_country,
            t.id_state,
            buyer.id_customer,
            "Empresa" if company else "Mi dirección",
            company,
            t.lastname,
            t.firstname,
            street or f"{t.address1.rsplit(' ', 1)[0]} {number}",
            t.address2,
            t.postcode,
            t.city,
            "+34 931 234 567" if company else None,
            t.phone_mobile,
            f"ESB{buyer.id_customer:08d}" if company else None,
            t.dni,
            _stamp(at),
            _stamp(updated or at),
            1,
            int(deleted),
        )
        return id_address

    def lines(self) -> list[tuple[int, str | None, str, int, str, int]]:
        """A basket: products with their quantities, 1 to 5 lines."""
        count = LINE_COUNTS[self.rng.randrange(len(LINE_COUNTS))]
        picked = self.rng.sample(self.products, count)
        return [(*product, self.rng.randint(1, 3)) for product in picked]

    def reference(self, shipped_at: datetime, now: datetime, mid_year: datetime, room: int) -> None:
        """One SeQura order reference shipped at `shipped_at`: one order, or two if `room` allows a split."""
        rng = self.rng
        placed = shipped_at - timedelta(hours=rng.uniform(*PLACED_HOURS_BEFORE_SHIPPING))
        buyer = self.buyer(placed - timedelta(days=rng.uniform(0, 30)))
        id_cart = self._next("id_cart")
        reference = _reference(id_cart)
        delivery = buyer.id_address
        invoice = delivery
        if rng.random() < COMPANY_INVOICE_SHARE:
            invoice = self.address(buyer, placed, company=f"{buyer.template.lastname} S.L.")
        split = room > 1 and rng.random() < SPLIT_SHARE
        carriers = rng.sample(range(len(self.carriers)), 2 if split else 1)
        currency = GBP if rng.random() < GBP_SHARE else EUR
        self.shipped_references += 1
        for part, carrier in enumerate(carriers):
            part_shipped = shipped_at + timedelta(days=rng.uniform(1, 3)) if part else shipped_at
            self.order(
                reference,
                id_cart,
                buyer,
                (delivery, invoice),
                self.carriers[carrier],
                currency,
                placed,
                part_shipped if part_shipped < now else None,
                now,
                mid_year,
            )

    def order(
        self,
        reference: str,
        id_cart: int,
        buyer: _Buyer,
        addresses: tuple[int, int],
        carrier: _Carrier,
        currency: int,
        placed: datetime,
        shipped_at: datetime | None,
        now: datetime,
        mid_year: datetime,
        *,
        module: str = "sequrapayment",
        cancelled: bool = False,
    ) -> None:
        """One order with its lines, discount, carrier row, history and refunds, as PrestaShop writes them."""
        rng = self.rng
        id_order = self._next("orders")
        lines = self.lines()
        products_wt = sum(cents * quantity for _, _, _, cents, _, quantity in lines)
        shipping = 0 if products_wt >= 6000 else carrier.shipping_cents
        wrapping = WRAPPING_CENTS if rng.random() < GIFT_SHARE else 0
        discount: tuple[int, str, int, int] | None = None
        roll = rng.random()
        if roll < DISCOUNT_SHARE:
            discount = (1, "Bienvenida -10 %", (products_wt + 5) // 10, 0)
        elif roll < DISCOUNT_SHARE + FREE_SHIPPING_SHARE and shipping:
            discount = (2, "Envío gratis", shipping, 1)
        discounts = discount[2] if discount else 0
        paid = products_wt + shipping + wrapping - discounts
        events: list[tuple[int, datetime, int]] = [(PAYMENT_ACCEPTED, placed, 0)]
        prepared = placed + timedelta(hours=rng.uniform(2, 18))
        if cancelled:
            events.append((CANCELED, prepared, 1))
        elif prepared < now:
            events.append((PROCESSING_IN_PROGRESS, prepared, 1))
        delivered_at = None
        if shipped_at is not None:
            events.append((SHIPPED, shipped_at, 1))
            delivered_at = shipped_at + timedelta(days=rng.uniform(1, 4))
            if delivered_at < now and rng.random() < DELIVERED_SHARE:
                events.append((DELIVERED, delivered_at, 0))
            else:
                delivered_at = None
        refunded: list[int] = [0] * len(lines)
        refund_at = None
        if delivered_at is not None:
            refund_at = delivered_at + timedelta(days=rng.uniform(1, 10))
            roll = rng.random()
            if refund_at >= now:
                refund_at = None
            elif roll < FULL_REFUND_SHARE:
                refunded = [quantity for *_, quantity in lines]
                events.append((REFUNDED, refund_at + timedelta(minutes=5), 1))
            elif roll < FULL_REFUND_SHARE + PARTIAL_REFUND_SHARE:
                refunded[0] = 1
            else:
                refund_at = None
        id_carrier = carrier.ids[0] if placed < mid_year else carrier.ids[1]
        id_delivery, id_invoice = addresses
        updated = events[-1][1]
        if shipped_at is not None and module == "sequrapayment" and rng.random() < EDITED_ADDRESS_SHARE:
            edited = shipped_at + timedelta(days=rng.uniform(1, 5))
            if edited < now:
                id_delivery = self.edit_address(buyer, id_delivery, edited, repoint=rng.random() < 0.5)
                if id_delivery != addresses[0]:
                    updated = max(updated, edited)
        invoice_number = self._next("invoice_number")
        delivery_number = self._next("delivery_number") if len(events) > 1 and not cancelled else 0
        delivery_date = max(
            (at for state, at, _ in events if state in (PROCESSING_IN_PROGRESS, SHIPPED, DELIVERED)),
            default=None,
        )
        self.files["orders"].add(
            id_order,
            reference,
            1,
            1,
            id_carrier,
            SPANISH,
            buyer.id_customer,
            id_cart,
            currency,
            id_delivery,
            id_invoice,
            events[-1][0],
            f"{buyer.id_customer:032x}",
            PAYMENT_LABELS.get(module, module),
            "1.000000" if currency == EUR else "0.850000",
            module,
            int(bool(wrapping)),
            "¡Feliz cumpleaños! 🎂" if wrapping else None,
            _money(discounts),
            _money(discounts),
            _excl(discounts),
            _money(paid),
            _money(paid),
            _excl(paid),
            _money(paid),
            _excl(products_wt),
            _money(products_wt),
            _money(shipping),
            _money(shipping),
            _excl(shipping),
            "21.000",
            _money(wrapping),
            _money(wrapping),
            _excl(wrapping),
            invoice_number,
            delivery_number,
            _stamp(placed),
            _stamp(delivery_date) if delivery_date else ZERO_DATETIME,
            int(not cancelled),
            _stamp(placed),
            _stamp(updated),
        )
        for (product_id, product_reference, name, cents, weight, quantity), gone in zip(
            lines, refunded, strict=True
        ):
            self.files["order_detail"].add(
                self._next("order_detail"),
                id_order,
                0,
                0,
                1,
                product_id,
                0,
                name,
                quantity,
                quantity,
                gone,
                _excl(cents),
                product_reference,
                weight,
                1,
                "IVA ES 21%",
                "21.000",
                _money(cents * quantity),
                _excl(cents * quantity),
                _money(cents),
                _excl(cents),
                _excl(cents),
                _money(cents * gone),
                _excl(cents * gone),
            )
        for state, at, employee in events:
            heapq.heappush(self.pending_history, (at, self.history_rows, employee, id_order, state))
            self.history_rows += 1
        self.files["order_carrier"].add(
            self._next("order_carrier"),
            id_order,
            id_carrier,
            f"{0.5 * sum(line[-1] for line in lines):.6f}",
            _excl(shipping),
            _money(shipping),
            f"PK{id_order:013d}ES" if carrier.tracked and rng.random() >= UNTRACKED_SHARE else None,
            _stamp(placed),
        )
        if discount:
            id_cart_rule, name, value, free_shipping = discount
            self.files["order_cart_rule"].add(
                self._next("order_cart_rule"), id_order, id_cart_rule, 0, name, _money(value), _excl(value),
                free_shipping, 0,
            )  # fmt: skip
        if refund_at is not None:
            amount = sum(line[3] * gone for line, gone in zip(lines, refunded, strict=True))
            self.files["order_slip"].add(
                self._next("order_slip"), buyer.id_customer, id_order, _excl(amount), _money(amount),
                "0.000000", "0.000000", _money(amount), 1, _stamp(refund_at), _stamp(refund_at),
            )  # fmt: skip
        if module == "sequrapayment":
            sent = shipped_at is not None and rng.random() < MODULE_SENT_SHARE
            self.files["sequra_order"].add(id_order, int(sent), MERCHANT_ID)
            if shipped_at is not None:
                self.shipped_orders += 1
            else:
                self.other_orders += 1
        else:
            self.other_orders += 1

    def write_history(self, before: datetime | None = None) -> None:
        """Write the pending order_history rows dated before `before` (all without it), in date order.

        PrestaShop inserts a history row when an order changes state, so its ids follow their dates; the
        rows wait here until no order generated later can bring a row dated before them.
        """
        pending = self.pending_history
        while pending and (before is None or pending[0][0] < before):
            at, _, employee, id_order, state = heapq.heappop(pending)
            row_id = self._next("order_history")
            self.files["order_history"].add(row_id, employee, id_order, state, _stamp(at))

    def edit_address(self, buyer: _Buyer, id_address: int, at: datetime, *, repoint: bool) -> int:
        """Edit a used address as PrestaShop does: a new row, the old one soft-deleted at `at`.

        Returns the id the order points to afterwards: the new row when `repoint`, as an edit from the
        order page does, else the old one.
        """
        new_id = self.address(buyer, at, street=f"{buyer.template.address1} (bis)")
        self.soft_deleted.append((id_address, at))
        if id_address == buyer.id_address:
            buyer.id_address = new_id
        return new_id if repoint else id_address

    def other_order(self, shipped_at: datetime, now: datetime, mid_year: datetime) -> None:
        """An order of another payment module, shipped too: never reported to SeQura."""
        rng = self.rng
        placed = shipped_at - timedelta(hours=rng.uniform(*PLACED_HOURS_BEFORE_SHIPPING))
        buyer = self.buyer(placed)
        id_cart = self._next("id_cart")
        self.order(
            _reference(id_cart),
            id_cart,
            buyer,
            (buyer.id_address, buyer.id_address),
            self.carriers[rng.randrange(len(self.carriers))],
            EUR,
            placed,
            shipped_at,
            now,
            mid_year,
            module=OTHER_MODULES[rng.randrange(len(OTHER_MODULES))],
        )

    def unshipped_order(self, placed: datetime, now: datetime, mid_year: datetime) -> None:
        """A SeQura order not shipped: awaiting preparation, or cancelled."""
        buyer = self.buyer(placed)
        id_cart = self._next("id_cart")
        self.order(
            _reference(id_cart),
            id_cart,
            buyer,
            (buyer.id_address, buyer.id_address),
            self.carriers[0],
            EUR,
            placed,
            None,
            now,
            mid_year,
            cancelled=self.rng.random() < 0.5,
        )


def _shipping_times(count: int, start: datetime, end: datetime, rng: random.Random) -> Iterator[datetime]:
    """`count` moments spread at random over [start, end), in time order."""
    span = (end - start).total_seconds()
    for offset in sorted(rng.random() * span for _ in range(count)):
        yield start + timedelta(seconds=offset)


def _next_ids(conn: Connection, tables: ShopTables) -> _Ids:
    """One past the highest id in use in every table the generator fills, so it can add to a shop."""

    def after(column: object) -> int:
        return int(conn.execute(select(func.coalesce(func.max(column), 0))).scalar_one()) + 1

    t = tables
    return _Ids(
        customer=after(t.customer.c.id_customer),
        address=after(t.address.c.id_address),
        orders=after(t.orders.c.id_order),
        order_detail=after(t.order_detail.c.id_order_detail),
        order_history=after(t.order_history.c.id_order_history),
        order_carrier=after(t.order_carrier.c.id_order_carrier),
        order_cart_rule=after(t.order_cart_rule.c.id_order_cart_rule),
        order_slip=after(t.order_slip.c.id_order_slip),
        invoice_number=after(t.orders.c.invoice_number),
        delivery_number=after(t.orders.c.delivery_number),
        id_cart=after(t.orders.c.id_cart),
    )


def _install(engine: Engine, tables: ShopTables, now: datetime) -> list[_Carrier]:
    """Install a fresh shop's defaults and the demo shop's carriers, MRW edited half a year ago."""
    writer = ShopWriter(engine, tables)
    writer.install_defaults(at=now - timedelta(days=400))
    correos = writer.add_carrier("Correos Express", url="https://s.correosexpress.com/c?n=@", delay="24-48 h")
    seur = writer.add_carrier("SEUR", url="https://www.seur.com/livetracking/?segOnlineIdentificador=@")
    mrw = writer.add_carrier("MRW", url="https://www.mrw.es/seguimiento_envios/?num=@", delay="48-72 h")
    pickup = writer.add_carrier("Recogida en tienda", delay="Mismo día", is_free=True)
    edited_mrw = writer.edit_carrier(mrw, url="https://www.mrw.es/seguimiento/?n=@", delay="24-48 h")
    return [
        _Carrier((correos, correos), 495, tracked=True),
        _Carrier((seur, seur), 690, tracked=True),
        _Carrier((mrw, edited_mrw), 590, tracked=True),
        _Carrier((pickup, pickup), 0, tracked=False),
    ]


def _carriers(conn: Connection, tables: ShopTables) -> list[_Carrier]:
    """The carriers an installed big shop already has, for adding orders to it."""
    carrier = tables.carrier
    rows = conn.execute(
        select(carrier.c.id_carrier, carrier.c.id_reference, carrier.c.name, carrier.c.deleted).order_by(
            carrier.c.id_carrier
        )
    ).all()
    costs = {"Correos Express": 495, "SEUR": 690, "MRW": 590, "Recogida en tienda": 0}
    found: dict[int, list[int]] = {}
    names: dict[int, str] = {}
    for row in rows:
        found.setdefault(row.id_reference, []).append(row.id_carrier)
        names[row.id_reference] = row.name
    return [
        _Carrier((ids[0], ids[-1]), costs.get(names[ref], 495), tracked=costs.get(names[ref], 495) > 0)
        for ref, ids in found.items()
    ]


def loading_engine(url: URL) -> Engine:
    """An engine that may send LOAD DATA LOCAL INFILE (pymysql's local_infile), in utf8mb4."""
    if url.get_backend_name() not in ("mysql", "mariadb"):
        raise BigShopError(
            f"seed needs a MariaDB or MySQL database (mysql+pymysql://...), not {url.get_backend_name()}"
        )
    if "charset" not in url.query:
        url = url.update_query_dict({"charset": "utf8mb4"})
    return create_engine(url, connect_args={"local_infile": True})


def _load(engine: Engine, batches: Sequence[_Batch]) -> None:
    """Bulk-load one batch of every table, in one transaction; deletes the files."""
    try:
        with engine.begin() as conn:
            conn.exec_driver_sql("SET SESSION unique_checks = 0, foreign_key_checks = 0")
            for batch in batches:
                columns = ", ".join(f"`{column}`" for column in batch.columns)
                conn.exec_driver_sql(
                    f"LOAD DATA LOCAL INFILE %s INTO TABLE `{batch.table}` CHARACTER SET utf8mb4 ({columns})",
                    (str(batch.path),),
                )
                batch.path.unlink()
    except OperationalError as error:
        raise BigShopError(
            f"the database refused LOAD DATA LOCAL INFILE ({error.orig}); "
            "turn it on with SET GLOBAL local_infile = 1 (MySQL 8 has it off by default)"
        ) from None


def _soft_delete_addresses(
    conn: Connection, tables: ShopTables, edited: Sequence[tuple[int, datetime]]
) -> None:
    """Mark the addresses edited after use deleted=1, updated when they were edited."""
    if not edited:
        return
    address = tables.address
    conn.execute(
        update(address)
        .where(address.c.id_address == bindparam("edited_id"))
        .values(deleted=1, date_upd=bindparam("edited_at")),
        [{"edited_id": id_address, "edited_at": at} for id_address, at in edited],
    )


def seed_big_shop(
    engine: Engine,
    tables: ShopTables,
    orders: int,
    *,
    now: datetime,
    days: float = 365,
    seed: int = 1,
    prestashop_version: str = "8.0",
) -> BigShop:
    """Add `orders` shipped SeQura orders, shipped over the `days` before `now` (shop-local), to a shop.

    An empty database first gets PrestaShop's real DDL (`prestashop_version`), a fresh install's data and
    the carriers; a shop seeded before gets more orders after its own (ids and references continue).
    About 8% more orders come on top: other payment modules, and SeQura orders not shipped yet or
    cancelled. Writes the database.
    """
    started = time.monotonic()
    if not inspect(engine).has_table(tables.orders.name):
        create_prestashop_schema(engine, prestashop_version, tables.prefix)
    with engine.connect() as conn:
        ids = _next_ids(conn, tables)
        carriers = _carriers(conn, tables)
    if not carriers:
        carriers = _install(engine, tables, now)
    rng = random.Random(seed * 1_000_003 + ids.orders)
    mid_year = now - timedelta(days=days / 2)
    with (
        tempfile.TemporaryDirectory(prefix="sequra-etl-seed-") as folder,
        ThreadPoolExecutor(1, thread_name_prefix="seed-loader") as loader,
    ):
        generator = _Generator(Path(folder), tables, ids, carriers, seed=rng.randrange(2**32))
        start = now - timedelta(days=days)
        loads: list[Future[None]] = []
        # A split order ships two orders: this many references fill the period, the last hour tops them up.
        references = max(1, round(orders / (1 + SPLIT_SHARE)))
        last = now - timedelta(minutes=10)
        times = _shipping_times(references, start, last, rng)
        # No order generated from now on is placed before this long before the latest shipment.
        earliest_next = timedelta(hours=PLACED_HOURS_BEFORE_SHIPPING[1], minutes=TOP_UP_MINUTES)
        number = 0
        while generator.shipped_orders < orders:
            shipped_at = next(times, None) or last - timedelta(minutes=rng.uniform(0, TOP_UP_MINUTES))
            generator.reference(shipped_at, now, mid_year, room=orders - generator.shipped_orders)
            if rng.random() < OTHER_MODULE_SHARE:
                generator.other_order(shipped_at, now, mid_year)
            if rng.random() < NOT_SHIPPED_SHARE:
                generator.unshipped_order(shipped_at - timedelta(hours=rng.uniform(1, 48)), now, mid_year)
            generator.write_history(before=shipped_at - earliest_next)
            number += 1
            if number % BATCH_REFERENCES == 0:
                loads.append(loader.submit(_load, engine, generator.rotate()))  # the database loads as we go
        generator.write_history()
        loads.append(loader.submit(_load, engine, generator.rotate()))
        for load in loads:
            load.result()
    with engine.begin() as conn:
        _soft_delete_addresses(conn, tables, generator.soft_deleted)
    return BigShop(
        shipped_orders=generator.shipped_orders,
        shipped_references=generator.shipped_references,
        other_orders=generator.other_orders,
        rows={table_file.table: table_file.rows for table_file in generator.files.values()},
        seconds=time.monotonic() - started,
    )
