"""The demo shop: a realistic mix of orders placed in the five days before `now`, written with ShopWriter."""

from __future__ import annotations

import random
import string
from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy.engine import Engine

from schemas.prestashop import ShopTables
from seeding.vocabulary import (
    AWAITING_BANK_WIRE,
    AWAITING_CHECK_PAYMENT,
    BUYERS,
    CANCELED,
    CATALOGUE,
    DELIVERED,
    PAYMENT_ACCEPTED,
    PROCESSING_IN_PROGRESS,
    REFUNDED,
    SHIPPED,
    SPAIN,
    STATE_IDS,
    Buyer,
    Discount,
    Line,
    total_of,
)
from seeding.writer import ShopWriter


@dataclass(frozen=True)
class DemoShop:
    """What `seed_demo_shop` wrote, by order reference (one reference may cover several split orders).

    shipped_refs, quarantine_refs, module_sent_refs and ignored_refs share out every reference in the shop.
    The single-reference fields name edge cases; each is in shipped_refs unless its comment says otherwise.
    """

    merchant_id: str
    shipped_refs: tuple[str, ...]  # SeQura orders with a shipped part: to report
    delivered_refs: tuple[str, ...]  # those shipped_refs whose history also reached Delivered
    quarantine_refs: tuple[str, ...]  # shipped SeQura orders whose data cannot make a valid report
    module_sent_refs: tuple[str, ...]  # shipped SeQura orders the PHP module already reported
    ignored_refs: tuple[str, ...]  # other payment modules' orders, SeQura orders not shipped or cancelled
    guest_ref: str  # bought through a guest checkout
    deleted_customer_ref: str  # its customer is soft-deleted (customer.deleted = 1)
    company_ref: str  # a separate company invoice address with a VAT number
    edited_address_ref: str  # address edited after shipping: the order keeps the soft-deleted row
    repointed_address_ref: str  # address edited from the order page: the order points at the new row
    edited_carrier_ref: str  # carrier edited after shipping: the order keeps the deleted=1 carrier row
    untracked_ref: str  # shipped without a tracking number
    gift_ref: str  # gift-wrapped, with a gift message
    free_ref: str  # a 100% discount with free shipping: total 0
    large_ref: str  # 500 lines
    split_partial_ref: str  # two orders, two carriers: one shipped, the other still in preparation
    split_staggered_ref: str  # two orders shipped on different days
    partial_refund_ref: str  # one unit of a line refunded after shipping
    refunded_product: str  # the product_reference of that line, with units left to refund
    returned_ref: str  # shipped, delivered, then fully refunded (state Refunded)
    corrupt_totals_ref: str  # in quarantine_refs: total_paid_tax_incl 7.50 above its lines
    missing_currency_ref: str  # in quarantine_refs: id_currency 99 has no currency row
    unknown_country_ref: str  # in quarantine_refs: its address has id_country 999
    cancelled_ref: str  # in ignored_refs: a SeQura order cancelled before it shipped


_GUEST = Buyer("Pau", "Vilà i Puig", "pau.vila@example.cat", SPAIN, "Carrer de Sants 200", None, "08028",
                "Barcelona", STATE_IDS["B"], "+34 622 001 122", "44556677L")  # fmt: skip
_FORMER_CUSTOMER = Buyer("Marta", "Sánchez Ruiz", "marta.sanchez@example.es", SPAIN,
                          "Avenida de América 10", "5º A", "28002", "Madrid", STATE_IDS["M"],
                          "+34 611 998 877", "99887766J")  # fmt: skip
_UNKNOWN_COUNTRY = 999
_ABROAD = Buyer("Hans", "Müller", "hans.mueller@example.de", _UNKNOWN_COUNTRY, "Torstraße 1", None, "10119",
                 "Berlin", None, "+49 151 2345 6789", None)  # fmt: skip

_BULK = tuple(
    Line(f"Tornillo inoxidable M{3 + i % 6}×{10 + i % 40} mm", f"SCR-{i:04d}", 1 + i % 4,
         Decimal("0.35") + Decimal("0.05") * (i % 10), weight=Decimal("0.004"))
    for i in range(500)
)  # fmt: skip
_DEMO_SEED = 20240611


def _products_wt(lines: Iterable[Line]) -> Decimal:
    """The lines' total, tax included."""
    return total_of(line.unit_price_tax_incl * line.quantity for line in lines)


class _DemoSeeder:
    """Places the demo shop's orders at times counted back from `now`, with stable random choices."""

    def __init__(self, writer: ShopWriter, now: datetime, merchant_id: str) -> None:
        self.writer = writer
        self.now = now
        self.merchant_id = merchant_id
        self.rng = random.Random(_DEMO_SEED)
        self.references: set[str] = set()

    def hours_ago(self, hours: float) -> datetime:
        """The shop-local time `hours` before now."""
        return self.now - timedelta(hours=hours)

    def new_reference(self) -> str:
        """A new order reference: 9 uppercase letters, as Order::generateReference makes them."""
        reference = "".join(self.rng.choices(string.ascii_uppercase, k=9))
        if reference in self.references:
            return self.new_reference()
        self.references.add(reference)
        return reference

    def basket(self, size: int) -> list[Line]:
        """`size` different catalogue products, 1 to 3 of each."""
        return [replace(item, quantity=self.rng.randint(1, 3)) for item in self.rng.sample(CATALOGUE, size)]

    def buyer(self, buyer: Buyer, *, is_guest: bool = False, deleted: bool = False) -> tuple[int, int]:
        """Register a buyer and their address a month ago; return (id_customer, id_address)."""
        at = self.hours_ago(24 * 30)
        id_customer = self.writer.add_customer(
            firstname=buyer.firstname,
            lastname=buyer.lastname,
            email=buyer.email,
            is_guest=is_guest,
            deleted=deleted,
            at=at,
        )
        id_address = self.writer.add_address(
            id_customer,
            firstname=buyer.firstname,
            lastname=buyer.lastname,
            address1=buyer.address1,
            address2=buyer.address2,
            postcode=buyer.postcode,
            city=buyer.city,
            id_country=buyer.id_country,
            id_state=buyer.id_state,
            phone_mobile=buyer.phone_mobile,
            dni=buyer.dni,
            at=at,
        )
        return id_customer, id_address

    def order(
        self, buyer: tuple[int, int], id_carrier: int, placed_hours_ago: float, **details: Any
    ) -> tuple[str, int]:
        """Place an order (a random basket unless `lines` is given); return (reference, id_order).

        SeQura orders are registered in the module's table with sent_to_sequra = 0, as the module does.
        """
        if "reference" not in details:
            details["reference"] = self.new_reference()
        if "lines" not in details:
            details["lines"] = self.basket(self.rng.randint(1, 6))
        id_customer, id_address = buyer
        id_order = self.writer.add_order(
            id_customer=id_customer,
            id_address_delivery=id_address,
            id_carrier=id_carrier,
            placed_at=self.hours_ago(placed_hours_ago),
            **details,
        )
        if details.get("module", "sequrapayment") == "sequrapayment":
            self.writer.mark_sent_by_module(id_order, merchant_id=self.merchant_id, sent=False)
        return details["reference"], id_order

    def ship(self, id_order: int, hours_ago: float, *, tracked: bool = True) -> None:
        """Prepare the order, give it a tracking number (unless not `tracked`) and mark it Shipped."""
        at = self.hours_ago(hours_ago)
        self.writer.set_state(id_order, PROCESSING_IN_PROGRESS, at=at - timedelta(hours=2), id_employee=1)
        if tracked:
            self.writer.set_tracking(id_order, f"PK{self.rng.randrange(10**13, 10**14)}ES", at=at)
        self.writer.set_state(id_order, SHIPPED, at=at, id_employee=1)

    def deliver(self, id_order: int, hours_ago: float) -> None:
        """Mark the order Delivered, as a carrier module does."""
        self.writer.set_state(id_order, DELIVERED, at=self.hours_ago(hours_ago))


def seed_demo_shop(
    engine: Engine, tables: ShopTables, *, now: datetime, merchant_id: str = "demo_merchant"
) -> DemoShop:
    """Fill an empty shop with a realistic mix of orders placed in the 5 days before `now` (shop-local time).

    Installs the defaults and four carriers first. The same `now` always gives the same shop.
    """
    writer = ShopWriter(engine, tables)
    writer.install_defaults(at=now - timedelta(days=60))
    seed = _DemoSeeder(writer, now, merchant_id)
    correos = writer.add_carrier("Correos Express", url="https://s.correosexpress.com/c?n=@", delay="24-48 h")
    seur = writer.add_carrier("SEUR", url="https://www.seur.com/livetracking/?segOnlineIdentificador=@")
    mrw = writer.add_carrier("MRW", url="https://www.mrw.es/seguimiento_envios/?num=@", delay="48-72 h")
    pickup = writer.add_carrier("Recogida en tienda", delay="Mismo día", is_free=True)
    buyers = [seed.buyer(buyer) for buyer in BUYERS]
    shipped: list[str] = []
    delivered: list[str] = []

    for i in range(16):
        lines = seed.basket(seed.rng.randint(1, 6))
        welcome = Discount("Bienvenida -10 %", (_products_wt(lines) / 10).quantize(Decimal("0.01")))
        placed = seed.rng.uniform(30, 118)
        reference, id_order = seed.order(
            buyers[i % len(buyers)],
            seed.rng.choice((correos, seur, pickup)),
            placed,
            lines=lines,
            discounts=[welcome] if i % 5 == 2 else [],
            shipping=Decimal(seed.rng.choice(("0", "4.95", "6.90"))),
        )
        shipped_hours_ago = placed - seed.rng.uniform(2, 20)
        seed.ship(id_order, shipped_hours_ago)
        shipped.append(reference)
        if i % 3 == 0 and shipped_hours_ago > 26:
            seed.deliver(id_order, shipped_hours_ago - 24)
            delivered.append(reference)

    guest_ref, id_order = seed.order(
        seed.buyer(_GUEST, is_guest=True), correos, 100, shipping=Decimal("4.95")
    )
    seed.ship(id_order, 90)
    deleted_customer_ref, id_order = seed.order(seed.buyer(_FORMER_CUSTOMER, deleted=True), seur, 110)
    seed.ship(id_order, 100)

    maria = buyers[3]
    company_address = writer.add_address(
        maria[0],
        firstname="María",
        lastname="García López",
        company="Ferretería García S.L.",
        vat_number="ESB12345678",
        address1="Carrer de la Indústria 7",
        postcode="08025",
        city="Barcelona",
        id_country=SPAIN,
        id_state=STATE_IDS["B"],
        phone="+34 931 234 567",
        alias="Empresa",
        at=seed.hours_ago(24 * 20),
    )
    company_ref, id_order = seed.order(maria, seur, 80, id_address_invoice=company_address)
    seed.ship(id_order, 70)

    edited_address_ref, id_order = seed.order(buyers[4], correos, 96)
    seed.ship(id_order, 80)
    writer.edit_address(
        buyers[4][1], address1="9 place Bellecour", other="Digicode 4721", at=seed.hours_ago(20)
    )

    repointed_address_ref, id_order = seed.order(buyers[6], seur, 70)
    seed.ship(id_order, 60)
    moved_to = writer.edit_address(buyers[6][1], address1="Avenida dos Aliados 106", at=seed.hours_ago(10))
    for kind in ("delivery", "invoice"):
        writer.repoint_order_address(id_order, kind, moved_to, at=seed.hours_ago(10))

    edited_carrier_ref, id_order = seed.order(buyers[5], mrw, 90, shipping=Decimal("5.90"))
    seed.ship(id_order, 85)
    mrw = writer.edit_carrier(mrw, url="https://www.mrw.es/seguimiento/?n=@", delay="24-48 h")
    reference, id_order = seed.order(buyers[5], mrw, 40, shipping=Decimal("5.90"))
    seed.ship(id_order, 30)
    shipped.append(reference)

    untracked_ref, id_order = seed.order(buyers[7], pickup, 75)
    seed.ship(id_order, 50, tracked=False)

    gift_ref, id_order = seed.order(
        buyers[1],
        correos,
        60,
        shipping=Decimal("6.90"),
        wrapping=Decimal("2.50"),
        gift=True,
        gift_message="Joyeux anniversaire ! 🎂",
    )
    seed.ship(id_order, 45)

    lines = seed.basket(2)
    everything = Discount("Vale regalo 100 %", _products_wt(lines) + Decimal("4.95"), free_shipping=True)
    free_ref, id_order = seed.order(
        buyers[2], correos, 55, lines=lines, shipping=Decimal("4.95"), discounts=[everything]
    )
    seed.ship(id_order, 40)

    large_ref, id_order = seed.order(buyers[8], seur, 50, lines=_BULK, shipping=Decimal("12.00"))
    seed.ship(id_order, 35)

    split_partial_ref, id_order = seed.order(buyers[0], correos, 48)
    seed.ship(id_order, 26)
    _, id_order = seed.order(buyers[0], seur, 48, reference=split_partial_ref)
    writer.set_state(id_order, PROCESSING_IN_PROGRESS, at=seed.hours_ago(26), id_employee=1)

    split_staggered_ref, id_order = seed.order(buyers[9], correos, 100)
    seed.ship(id_order, 72)
    _, id_order = seed.order(buyers[9], mrw, 100, reference=split_staggered_ref)
    seed.ship(id_order, 28)

    socks, backpack = CATALOGUE[3], CATALOGUE[2]
    lines = [replace(socks, quantity=3), backpack]
    partial_refund_ref, id_order = seed.order(buyers[3], correos, 90, lines=lines)
    seed.ship(id_order, 80)
    writer.refund(id_order, product_reference=str(socks.reference), quantity=1, at=seed.hours_ago(12))

    lines = [CATALOGUE[6], CATALOGUE[7]]
    returned_ref, id_order = seed.order(buyers[1], seur, 115, lines=lines)
    seed.ship(id_order, 105)
    seed.deliver(id_order, 80)
    for line in lines:
        writer.refund(
            id_order, product_reference=str(line.reference), quantity=line.quantity, at=seed.hours_ago(9)
        )
    writer.set_state(id_order, REFUNDED, at=seed.hours_ago(8), id_employee=1)
    delivered.append(returned_ref)

    lines = seed.basket(3)
    corrupt_totals_ref, id_order = seed.order(buyers[2], correos, 66, lines=lines, shipping=Decimal("4.95"))
    seed.ship(id_order, 50)
    writer.corrupt_order(
        id_order, total_paid_tax_incl=_products_wt(lines) + Decimal("4.95") + Decimal("7.50")
    )
    missing_currency_ref, id_order = seed.order(buyers[4], seur, 64, id_currency=99)
    seed.ship(id_order, 52)
    unknown_country_ref, id_order = seed.order(seed.buyer(_ABROAD), seur, 62)
    seed.ship(id_order, 54)

    module_sent_ref, id_order = seed.order(buyers[0], correos, 117)
    seed.ship(id_order, 110)
    writer.mark_sent_by_module(id_order, merchant_id=merchant_id, sent=True)

    ignored: list[str] = []
    reference, id_order = seed.order(
        buyers[5], correos, 100, module="ps_checkpayment", initial_state=AWAITING_CHECK_PAYMENT
    )
    writer.set_state(id_order, PAYMENT_ACCEPTED, at=seed.hours_ago(90), id_employee=1)
    seed.ship(id_order, 80)
    ignored.append(reference)
    reference, id_order = seed.order(
        buyers[2], seur, 110, module="ps_wirepayment", initial_state=AWAITING_BANK_WIRE
    )
    writer.set_state(id_order, PAYMENT_ACCEPTED, at=seed.hours_ago(100), id_employee=1)
    seed.ship(id_order, 90)
    seed.deliver(id_order, 60)
    ignored.append(reference)
    for placed in (5, 28):
        reference, _ = seed.order(buyers[placed % len(buyers)], correos, placed)
        ignored.append(reference)
    reference, id_order = seed.order(buyers[6], seur, 40)
    writer.set_state(id_order, PROCESSING_IN_PROGRESS, at=seed.hours_ago(30), id_employee=1)
    ignored.append(reference)
    cancelled_ref, id_order = seed.order(buyers[7], correos, 70)
    writer.set_state(id_order, CANCELED, at=seed.hours_ago(65), id_employee=1)
    ignored.append(cancelled_ref)

    edge_cases = DemoShop(
        merchant_id=merchant_id,
        shipped_refs=(),
        delivered_refs=tuple(delivered),
        quarantine_refs=(corrupt_totals_ref, missing_currency_ref, unknown_country_ref),
        module_sent_refs=(module_sent_ref,),
        ignored_refs=tuple(ignored),
        guest_ref=guest_ref,
        deleted_customer_ref=deleted_customer_ref,
        company_ref=company_ref,
        edited_address_ref=edited_address_ref,
        repointed_address_ref=repointed_address_ref,
        edited_carrier_ref=edited_carrier_ref,
        untracked_ref=untracked_ref,
        gift_ref=gift_ref,
        free_ref=free_ref,
        large_ref=large_ref,
        split_partial_ref=split_partial_ref,
        split_staggered_ref=split_staggered_ref,
        partial_refund_ref=partial_refund_ref,
        refunded_product=str(socks.reference),
        returned_ref=returned_ref,
        corrupt_totals_ref=corrupt_totals_ref,
        missing_currency_ref=missing_currency_ref,
        unknown_country_ref=unknown_country_ref,
        cancelled_ref=cancelled_ref,
    )
    shipped_edge_cases = [
        value
        for name, value in vars(edge_cases).items()
        if name.endswith("_ref") and value not in (*edge_cases.quarantine_refs, *edge_cases.ignored_refs)
    ]
    return replace(edge_cases, shipped_refs=(*shipped, *shipped_edge_cases))
