"""A PrestaShop shop seeder that writes rows the way PrestaShop itself does, and the demo shop built with it.

`ShopWriter` works through SQLAlchemy Core against `ShopTables`, on SQLite (`create_shop_schema`) and on
MySQL/MariaDB with PrestaShop's real DDL, filling every NOT NULL column without a default so strict mode
accepts the rows. All datetimes are the shop's naive local time, as PrestaShop stores them (PS_TIMEZONE).
"""

from __future__ import annotations

import hashlib
import random
import string
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any, Literal, NamedTuple

from sqlalchemy import Column, String, Table, func, insert, select, type_coerce, update
from sqlalchemy.engine import Connection, Engine

from schemas.prestashop import ZERO_DATETIME, ShopTables

# Default order state ids of a fresh install; real shops add their own, so the ETL never assumes these.
AWAITING_CHECK_PAYMENT = 1
PAYMENT_ACCEPTED = 2
PROCESSING_IN_PROGRESS = 3
SHIPPED = 4
DELIVERED = 5
CANCELED = 6
REFUNDED = 7
AWAITING_BANK_WIRE = 10

# PrestaShop's own ids for these countries (install data).
GERMANY, SPAIN, FRANCE, ITALY, PORTUGAL = 1, 6, 8, 10, 15

SPANISH, ENGLISH = 1, 2
EUR, GBP = 1, 2
_EUROPE = 1  # id_zone

_SIX_PLACES = Decimal("0.000001")
_CARRIER_TAX_RATE = Decimal("21.000")
_ZERO_DATETIME = type_coerce(ZERO_DATETIME, String)  # bound as text, so no DateTime processor sees year 0
_PAYMENT_LABELS = {
    "sequrapayment": "seQura",
    "ps_checkpayment": "Payments by check",
    "ps_wirepayment": "Bank transfer",
}


def _rows(columns: str, values: Iterable[Sequence[Any]]) -> list[dict[str, Any]]:
    """Rows to insert, from space-separated column names and one tuple of values per row."""
    names = columns.split()
    return [dict(zip(names, row, strict=True)) for row in values]


_LANGS = _rows(
    "id_lang name active iso_code language_code locale date_format_lite date_format_full is_rtl",
    [
        (SPANISH, "Español (Spanish)", 1, "es", "es-es", "es-ES", "d/m/Y", "d/m/Y H:i:s", 0),
        (ENGLISH, "English (English)", 1, "en", "en-us", "en-US", "m/d/Y", "m/d/Y H:i:s", 0),
    ],
)
_SHOPS = _rows(
    "id_shop id_shop_group name color id_category theme_name active deleted",
    [(1, 1, "Demo shop", "", 2, "classic", 1, 0)],
)
_CURRENCIES = _rows(
    "id_currency name iso_code numeric_iso_code precision conversion_rate",
    [
        (EUR, "Euro", "EUR", "978", 2, Decimal("1.000000")),
        (GBP, "British Pound", "GBP", "826", 2, Decimal("0.85")),
    ],
)
_COUNTRIES = _rows(
    "id_country id_zone iso_code call_prefix active contains_states need_identification_number "
    "zip_code_format display_tax_label",
    [
        (GERMANY, _EUROPE, "DE", 49, 1, 0, 0, "NNNNN", 1),
        (SPAIN, _EUROPE, "ES", 34, 1, 1, 1, "NNNNN", 1),
        (FRANCE, _EUROPE, "FR", 33, 1, 0, 0, "NNNNN", 1),
        (ITALY, _EUROPE, "IT", 39, 1, 1, 0, "NNNNN", 1),
        (PORTUGAL, _EUROPE, "PT", 351, 1, 0, 0, "NNNN-NNN", 1),
    ],
)
_COUNTRY_NAMES = _rows(
    "id_country id_lang name",
    [
        (id_country, id_lang, name)
        for id_country, spanish, english in (
            (GERMANY, "Alemania", "Germany"),
            (SPAIN, "España", "Spain"),
            (FRANCE, "Francia", "France"),
            (ITALY, "Italia", "Italy"),
            (PORTUGAL, "Portugal", "Portugal"),
        )
        for id_lang, name in ((SPANISH, spanish), (ENGLISH, english))
    ],
)
_STATES = _rows(
    "id_state id_country id_zone name iso_code active",
    [
        (1, SPAIN, _EUROPE, "Barcelona", "B", 1),
        (2, SPAIN, _EUROPE, "Madrid", "M", 1),
        (3, SPAIN, _EUROPE, "Valencia", "V", 1),
        (4, ITALY, _EUROPE, "Milano", "MI", 1),
    ],
)
STATE_IDS = {row["iso_code"]: row["id_state"] for row in _STATES}
"""The demo shop's state ids by ISO code: B, M, V (Spain) and MI (Italy)."""

# install-dev/data/xml/order_state.xml (see prestashop-schema.md §2): unremovable, none hidden.
_ORDER_STATES = _rows(
    "id_order_state module_name color invoice send_email logable delivery shipped paid pdf_invoice "
    "pdf_delivery unremovable hidden deleted",
    [
        (1, "ps_checkpayment", "#34209E", 0, 1, 0, 0, 0, 0, 0, 0, 1, 0, 0),
        (2, None, "#3498D8", 1, 1, 1, 0, 0, 1, 1, 0, 1, 0, 0),
        (3, None, "#3498D8", 1, 1, 1, 1, 0, 1, 0, 0, 1, 0, 0),
        (4, None, "#01b887", 1, 1, 1, 1, 1, 1, 0, 0, 1, 0, 0),
        (5, None, "#01b887", 1, 0, 1, 1, 1, 1, 0, 0, 1, 0, 0),
        (6, None, "#2C3E50", 0, 1, 0, 0, 0, 0, 0, 0, 1, 0, 0),
        (7, None, "#ec2e15", 1, 1, 0, 0, 0, 0, 0, 0, 1, 0, 0),
        (8, None, "#8f0621", 0, 1, 0, 0, 0, 0, 0, 0, 1, 0, 0),
        (9, None, "#3498D8", 1, 1, 0, 0, 0, 1, 0, 0, 1, 0, 0),
        (10, "ps_wirepayment", "#34209E", 0, 1, 0, 0, 0, 0, 0, 0, 1, 0, 0),
        (11, None, "#3498D8", 1, 1, 1, 0, 0, 1, 0, 0, 1, 0, 0),
        (12, None, "#8f0621", 0, 1, 0, 0, 0, 0, 0, 0, 1, 0, 0),
        (13, "ps_cashondelivery", "#34209E", 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0),
    ],
)
# install-dev/langs/{en,es}/data/order_state.xml
_ORDER_STATE_NAMES = _rows(
    "id_order_state id_lang name template",
    [
        (id_order_state, id_lang, name, template)
        for id_order_state, template, english, spanish in (
            (1, "cheque", "Awaiting check payment", "En espera de pago por cheque"),
            (2, "payment", "Payment accepted", "Pago aceptado"),
            (3, "preparation", "Processing in progress", "Preparación en curso"),
            (4, "shipped", "Shipped", "Enviado"),
            (5, "", "Delivered", "Entregado"),
            (6, "order_canceled", "Canceled", "Cancelado"),
            (7, "refund", "Refunded", "Reembolsado"),
            (8, "payment_error", "Payment error", "Error en el pago"),
            (9, "outofstock", "On backorder (paid)", "Pedido pendiente por falta de stock (pagado)"),
            (10, "bankwire", "Awaiting bank wire payment", "En espera de pago por transferencia bancaria"),
            (11, "payment", "Remote payment accepted", "Pago remoto aceptado"),
            (12, "outofstock", "On backorder (not paid)", "Pedido pendiente por falta de stock (no pagado)"),
            (
                13,
                "cashondelivery",
                "Awaiting Cash On Delivery validation",
                "En espera de validación contra reembolso",
            ),
        )
        for id_lang, name in ((SPANISH, spanish), (ENGLISH, english))
    ],
)


@dataclass(frozen=True)
class Line:
    """One product line of an order, priced tax included as the buyer paid it."""

    name: str
    reference: str | None
    quantity: int
    unit_price_tax_incl: Decimal
    tax_rate: Decimal = Decimal("21.000")
    weight: Decimal = Decimal("0.5")


@dataclass(frozen=True)
class Discount:
    """A cart rule used by an order: its value tax included and positive, as `order_cart_rule.value`."""

    name: str
    value: Decimal
    free_shipping: bool = False


def _six_places(amount: Decimal) -> Decimal:
    """An amount as a `decimal(20,6)` column keeps it (MySQL rounds half up)."""
    return amount.quantize(_SIX_PLACES, rounding=ROUND_HALF_UP)


def _tax_excl(amount_tax_incl: Decimal, tax_rate: Decimal) -> Decimal:
    """The tax-excluded equivalent of a tax-included amount taxed at `tax_rate` percent."""
    return _six_places(amount_tax_incl * 100 / (100 + tax_rate))


def _total(amounts: Iterable[Decimal]) -> Decimal:
    """The sum of some amounts, a Decimal even when there are none."""
    return sum(amounts, Decimal(0))


def _unit_prices(line: Line) -> tuple[Decimal, Decimal]:
    """A line's unit price tax included (as stored) and tax excluded."""
    unit = _six_places(line.unit_price_tax_incl)
    return unit, _tax_excl(unit, line.tax_rate)


@dataclass(frozen=True)
class _OrderAmounts:
    """Every amount of a new order, worked out as PrestaShop's cart does, in the order currency."""

    units: list[tuple[Decimal, Decimal]]  # per line: unit price tax incl, tax excl
    discounts: list[tuple[Decimal, Decimal]]  # per discount: value tax incl, tax excl
    products_wt: Decimal
    products: Decimal
    shipping: Decimal
    shipping_excl: Decimal
    wrapping: Decimal
    wrapping_excl: Decimal
    paid: Decimal
    paid_excl: Decimal

    @classmethod
    def of(
        cls, lines: Sequence[Line], discounts: Sequence[Discount], shipping: Decimal, wrapping: Decimal
    ) -> _OrderAmounts:
        """Work out the amounts; discounts split into tax incl/excl in proportion to the products."""
        units = [_unit_prices(line) for line in lines]
        products_wt = _total(unit * line.quantity for (unit, _), line in zip(units, lines, strict=True))
        products = _total(
            unit_excl * line.quantity for (_, unit_excl), line in zip(units, lines, strict=True)
        )
        values = [_six_places(discount.value) for discount in discounts]
        split = [
            (value, _six_places(value * products / products_wt) if products_wt else value) for value in values
        ]
        shipping, wrapping = _six_places(shipping), _six_places(wrapping)
        shipping_excl = _tax_excl(shipping, _CARRIER_TAX_RATE)
        wrapping_excl = _tax_excl(wrapping, _CARRIER_TAX_RATE)
        return cls(
            units=units,
            discounts=split,
            products_wt=products_wt,
            products=products,
            shipping=shipping,
            shipping_excl=shipping_excl,
            wrapping=wrapping,
            wrapping_excl=wrapping_excl,
            paid=max(Decimal(0), products_wt + shipping + wrapping - _total(incl for incl, _ in split)),
            paid_excl=max(
                Decimal(0), products + shipping_excl + wrapping_excl - _total(excl for _, excl in split)
            ),
        )


def _digest(*parts: str) -> str:
    """A stable hex digest, standing in for PrestaShop's random keys so seeded shops are reproducible."""
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()


def _next_number(connection: Connection, column: Column[Any]) -> int:
    """One more than the highest number in `column` (invoice and delivery slip numbers)."""
    return (connection.scalar(select(func.max(column))) or 0) + 1


def _stable_ids(
    connection: Connection,
    id_column: Column[Any],
    key_column: Column[Any],
    keys: Iterable[str],
    *,
    after: int = 0,
) -> dict[str, int]:
    """The id each key already has in `key_column`'s table, else a new id above those in use and `after`."""
    wanted = set(keys)
    if not wanted:
        return {}
    known = select(key_column, func.min(id_column)).where(key_column.in_(wanted)).group_by(key_column)
    found: dict[str, int] = {key: id_ for key, id_ in connection.execute(known)}
    next_id = max(connection.scalar(select(func.max(id_column))) or 0, after) + 1
    for key in sorted(wanted - found.keys()):
        found[key] = next_id
        next_id += 1
    return found


def _soft_replace(
    connection: Connection,
    table: Table,
    row_id: int,
    changes: Mapping[str, Any],
    *,
    keep: Iterable[str],
    on_new: Mapping[str, Any],
    on_old: Mapping[str, Any],
) -> int:
    """Copy a row with `changes` into a new row and mark the old one deleted=1; return the new id."""
    (id_column,) = table.primary_key.columns
    editable = set(table.c.keys()) - {id_column.key, "deleted", *keep, *on_new}
    if unknown := set(changes) - editable:
        raise TypeError(f"cannot change {sorted(unknown)} of {table.name}; editable: {sorted(editable)}")
    old = connection.execute(select(table).where(id_column == row_id)).mappings().first()
    if old is None:
        raise ValueError(f"no row {row_id} in {table.name}")
    new = {key: value for key, value in old.items() if key != id_column.key} | dict(changes) | dict(on_new)
    new_id: int = connection.execute(insert(table).values(**new)).inserted_primary_key[0]
    connection.execute(update(table).where(id_column == row_id).values(deleted=1, **on_old))
    return new_id


class ShopWriter:
    """Writes PrestaShop rows the way PrestaShop does, one transaction per call."""

    def __init__(self, engine: Engine, tables: ShopTables) -> None:
        self._engine = engine
        self._tables = tables

    def install_defaults(
        self, *, timezone: str = "Europe/Madrid", ps_version: str = "8.1.7", at: datetime | None = None
    ) -> None:
        """Write a fresh install's languages, shop, currencies, countries, states, order states and settings.

        Carriers are left to the caller (`add_carrier`). `at` dates the configuration rows (default: now).
        """
        t = self._tables
        with self._engine.begin() as connection:
            for table, rows in (
                (t.lang, _LANGS),
                (t.shop, _SHOPS),
                (t.currency, _CURRENCIES),
                (t.country, _COUNTRIES),
                (t.country_lang, _COUNTRY_NAMES),
                (t.state, _STATES),
                (t.order_state, _ORDER_STATES),
                (t.order_state_lang, _ORDER_STATE_NAMES),
            ):
                connection.execute(insert(table), rows)
        for name, value in (
            ("PS_TIMEZONE", timezone),
            ("PS_VERSION_DB", ps_version),
            ("PS_SHOP_NAME", "Demo shop"),
            ("PS_LANG_DEFAULT", SPANISH),
            ("PS_CURRENCY_DEFAULT", EUR),
            ("PS_OS_PAYMENT", PAYMENT_ACCEPTED),
            ("PS_OS_SHIPPING", SHIPPED),
            ("PS_OS_DELIVERED", DELIVERED),
            ("PS_OS_CANCELED", CANCELED),
        ):
            self.set_configuration(name, str(value), at=at)

    def set_configuration(self, name: str, value: str, *, at: datetime | None = None) -> None:
        """Set a shop-wide configuration value (id_shop, id_shop_group NULL) as Configuration::updateValue."""
        at = at or datetime.now().replace(microsecond=0)
        c = self._tables.configuration
        shop_wide = (c.c.name == name, c.c.id_shop.is_(None), c.c.id_shop_group.is_(None))
        with self._engine.begin() as connection:
            if not connection.execute(update(c).where(*shop_wide).values(value=value, date_upd=at)).rowcount:
                connection.execute(insert(c).values(name=name, value=value, date_add=at, date_upd=at))

    def add_customer(
        self,
        *,
        firstname: str,
        lastname: str,
        email: str,
        id_lang: int = SPANISH,
        is_guest: bool = False,
        deleted: bool = False,
        company: str | None = None,
        at: datetime,
    ) -> int:
        """Register a customer (or a guest checkout) at `at`; return its id_customer."""
        row = {
            "id_gender": 0,
            "id_default_group": 2 if is_guest else 3,  # PrestaShop's Guest and Customer groups
            "id_lang": id_lang,
            "company": company,
            "firstname": firstname,
            "lastname": lastname,
            "email": email,
            "passwd": ("$2y$10$" + _digest("passwd", email))[
                :60
            ],  # shaped like the bcrypt hash it stands for
            "last_passwd_gen": at,
            "secure_key": _digest("secure_key", email)[:32],
            "active": 1,
            "is_guest": int(is_guest),
            "deleted": int(deleted),
            "date_add": at,
            "date_upd": at,
        }
        with self._engine.begin() as connection:
            return connection.execute(insert(self._tables.customer).values(row)).inserted_primary_key[0]

    def add_address(
        self,
        id_customer: int,
        *,
        firstname: str,
        lastname: str,
        address1: str,
        city: str,
        postcode: str,
        id_country: int,
        id_state: int | None = None,
        address2: str | None = None,
        company: str | None = None,
        phone: str | None = None,
        phone_mobile: str | None = None,
        vat_number: str | None = None,
        dni: str | None = None,
        other: str | None = None,
        alias: str = "Mi dirección",
        at: datetime,
    ) -> int:
        """Save a customer's address at `at`; return its id_address."""
        row = {
            "id_customer": id_customer,
            "id_country": id_country,
            "id_state": id_state,
            "alias": alias,
            "company": company,
            "firstname": firstname,
            "lastname": lastname,
            "address1": address1,
            "address2": address2,
            "postcode": postcode,
            "city": city,
            "other": other,
            "phone": phone,
            "phone_mobile": phone_mobile,
            "vat_number": vat_number,
            "dni": dni,
            "active": 1,
            "deleted": 0,
            "date_add": at,
            "date_upd": at,
        }
        with self._engine.begin() as connection:
            return connection.execute(insert(self._tables.address).values(row)).inserted_primary_key[0]

    def edit_address(self, id_address: int, *, at: datetime, **changes: Any) -> int:
        """Edit a used address as PrestaShop does: a new row with the changes, the old row soft-deleted.

        Orders keep pointing at the old row (see `repoint_order_address`). Returns the new id_address.
        """
        with self._engine.begin() as connection:
            return _soft_replace(
                connection,
                self._tables.address,
                id_address,
                changes,
                keep=("id_customer",),
                on_new={"date_add": at, "date_upd": at},
                on_old={"date_upd": at},
            )

    def repoint_order_address(
        self, id_order: int, kind: Literal["delivery", "invoice"], id_address: int, *, at: datetime
    ) -> None:
        """Point an order at another address, as the back office's address edit from the order page does."""
        with self._engine.begin() as connection:
            self._update_order(connection, id_order, at, {f"id_address_{kind}": id_address})

    def add_carrier(
        self, name: str, *, url: str | None = None, delay: str = "24-48h", is_free: bool = False
    ) -> int:
        """Create an active carrier (id_reference = its id), its delay in every language; return its id."""
        t = self._tables
        with self._engine.begin() as connection:
            position = connection.scalar(select(func.count()).where(t.carrier.c.deleted == 0))
            carrier = {
                "id_reference": 0,
                "name": name,
                "url": url,
                "active": 1,
                "deleted": 0,
                "position": position,
            }
            carrier |= {"is_free": int(is_free), "shipping_handling": int(not is_free)}
            id_carrier: int = connection.execute(insert(t.carrier).values(carrier)).inserted_primary_key[0]
            connection.execute(
                update(t.carrier).where(t.carrier.c.id_carrier == id_carrier).values(id_reference=id_carrier)
            )
            id_langs = connection.scalars(select(t.lang.c.id_lang)).all()
            connection.execute(
                insert(t.carrier_lang),
                [
                    {"id_carrier": id_carrier, "id_shop": 1, "id_lang": id_lang, "delay": delay}
                    for id_lang in id_langs
                ],
            )
        return id_carrier

    def edit_carrier(self, id_carrier: int, *, delay: str | None = None, **changes: Any) -> int:
        """Edit a carrier as the back-office wizard does: a new row, same id_reference, the old one deleted=1.

        Orders keep pointing at the old row. Returns the new id_carrier.
        """
        carrier_lang = self._tables.carrier_lang
        with self._engine.begin() as connection:
            new_id = _soft_replace(
                connection,
                self._tables.carrier,
                id_carrier,
                changes,
                keep=("id_reference",),
                on_new={},
                on_old={},
            )
            delays = connection.execute(select(carrier_lang).where(carrier_lang.c.id_carrier == id_carrier))
            connection.execute(
                insert(carrier_lang),
                [{**row, "id_carrier": new_id, "delay": delay or row["delay"]} for row in delays.mappings()],
            )
        return new_id

    def add_order(
        self,
        *,
        reference: str,
        id_customer: int,
        id_address_delivery: int,
        id_address_invoice: int | None = None,
        id_carrier: int,
        lines: Sequence[Line],
        discounts: Sequence[Discount] = (),
        shipping: Decimal = Decimal("0"),
        wrapping: Decimal = Decimal("0"),
        gift: bool = False,
        gift_message: str | None = None,
        module: str = "sequrapayment",
        id_currency: int = EUR,
        id_lang: int = SPANISH,
        id_shop: int = 1,
        placed_at: datetime,
        tracking_number: str | None = None,
        initial_state: int = PAYMENT_ACCEPTED,
    ) -> int:
        """Place an order as PaymentModule::validateOrder does; return its id_order.

        Writes `orders` (consistent totals, zero invoice and delivery dates, date_add = date_upd = placed_at),
        one `order_detail` per line, one `order_cart_rule` per discount and one `order_carrier`, then enters
        `initial_state` as PrestaShop does (see `set_state`). Split orders are several calls with one
        `reference`; they share a cart.
        """
        if not lines:
            raise ValueError(f"order {reference} needs at least one line")
        t = self._tables
        amounts = _OrderAmounts.of(lines, discounts, shipping, wrapping)
        secure_key = select(t.customer.c.secure_key).where(t.customer.c.id_customer == id_customer)
        rate = select(t.currency.c.conversion_rate).where(t.currency.c.id_currency == id_currency)
        discounts_incl = _total(incl for incl, _ in amounts.discounts)
        order = {
            "reference": reference,
            "id_shop": id_shop,
            "id_carrier": id_carrier,
            "id_lang": id_lang,
            "id_customer": id_customer,
            "id_currency": id_currency,
            "id_address_delivery": id_address_delivery,
            "id_address_invoice": id_address_delivery if id_address_invoice is None else id_address_invoice,
            "current_state": 0,  # until the initial state is entered below
            "secure_key": func.coalesce(secure_key.scalar_subquery(), "-1"),
            "payment": _PAYMENT_LABELS.get(module, module),
            "conversion_rate": func.coalesce(rate.scalar_subquery(), 1),
            "module": module,
            "gift": int(gift),
            "gift_message": gift_message,
            "total_discounts": discounts_incl,
            "total_discounts_tax_incl": discounts_incl,
            "total_discounts_tax_excl": _total(excl for _, excl in amounts.discounts),
            "total_paid": amounts.paid,
            "total_paid_tax_incl": amounts.paid,
            "total_paid_tax_excl": amounts.paid_excl,
            "total_paid_real": Decimal(0),
            "total_products": amounts.products,
            "total_products_wt": amounts.products_wt,
            "total_shipping": amounts.shipping,
            "total_shipping_tax_incl": amounts.shipping,
            "total_shipping_tax_excl": amounts.shipping_excl,
            "carrier_tax_rate": _CARRIER_TAX_RATE,
            "total_wrapping": amounts.wrapping,
            "total_wrapping_tax_incl": amounts.wrapping,
            "total_wrapping_tax_excl": amounts.wrapping_excl,
            "invoice_date": _ZERO_DATETIME,
            "delivery_date": _ZERO_DATETIME,
            "date_add": placed_at,
            "date_upd": placed_at,
        }
        with self._engine.begin() as connection:
            carts = _stable_ids(connection, t.orders.c.id_cart, t.orders.c.reference, [reference])
            order["id_cart"] = carts[reference]
            id_order: int = connection.execute(insert(t.orders).values(order)).inserted_primary_key[0]
            product_ids = self._product_ids(connection, lines)
            connection.execute(
                insert(t.order_detail),
                [
                    {
                        "id_order": id_order,
                        "id_order_invoice": 0,
                        "id_warehouse": 0,
                        "id_shop": id_shop,
                        "product_id": product_id,
                        "product_attribute_id": 0,
                        "id_customization": 0,
                        "product_name": line.name,
                        "product_quantity": line.quantity,
                        "product_quantity_in_stock": line.quantity,
                        "product_price": unit_excl,
                        "product_reference": line.reference,
                        "product_weight": line.weight,
                        "id_tax_rules_group": 1,
                        "tax_computation_method": 0,
                        "tax_name": f"IVA ES {line.tax_rate.normalize():f}%",
                        "tax_rate": line.tax_rate,
                        "total_price_tax_incl": unit * line.quantity,
                        "total_price_tax_excl": unit_excl * line.quantity,
                        "unit_price_tax_incl": unit,
                        "unit_price_tax_excl": unit_excl,
                        "original_product_price": unit_excl,
                    }
                    for line, (unit, unit_excl), product_id in zip(
                        lines, amounts.units, product_ids, strict=True
                    )
                ],
            )
            if discounts:
                order_cart_rule = t.order_cart_rule
                names = [discount.name for discount in discounts]
                id_cart_rules = _stable_ids(
                    connection, order_cart_rule.c.id_cart_rule, order_cart_rule.c.name, names
                )
                connection.execute(
                    insert(order_cart_rule),
                    [
                        {
                            "id_order": id_order,
                            "id_cart_rule": id_cart_rules[discount.name],
                            "id_order_invoice": 0,
                            "name": discount.name,
                            "value": incl,
                            "value_tax_excl": excl,
                            "free_shipping": int(discount.free_shipping),
                            "deleted": 0,
                        }
                        for discount, (incl, excl) in zip(discounts, amounts.discounts, strict=True)
                    ],
                )
            carrier = {
                "id_order": id_order,
                "id_carrier": id_carrier,
                "weight": _total(line.weight * line.quantity for line in lines),
                "shipping_cost_tax_excl": amounts.shipping_excl,
                "shipping_cost_tax_incl": amounts.shipping,
                "tracking_number": tracking_number,
                "date_add": placed_at,
            }
            connection.execute(insert(t.order_carrier).values(carrier))
            self._enter_state(connection, id_order, initial_state, at=placed_at, id_employee=0)
        return id_order

    def set_state(self, id_order: int, id_order_state: int, *, at: datetime, id_employee: int = 0) -> None:
        """Move an order to a state as Order::setCurrentState does; nothing happens if it is already there.

        Writes an order_history row and sets current_state, valid (the state's logable flag) and date_upd; an
        invoicing state gives the order its invoice number and date, a delivery state (Processing in progress
        too) its delivery slip number and delivery_date, a paid state its total_paid_real.
        """
        orders = self._tables.orders
        with self._engine.begin() as connection:
            current = connection.scalar(select(orders.c.current_state).where(orders.c.id_order == id_order))
            if current is None:
                raise ValueError(f"no order {id_order} in {orders.name}")
            if current != id_order_state:
                self._enter_state(connection, id_order, id_order_state, at=at, id_employee=id_employee)

    def set_tracking(self, id_order: int, tracking_number: str, *, at: datetime) -> None:
        """Set the order's tracking number (in order_carrier), as the back office's shipping edit does."""
        order_carrier = self._tables.order_carrier
        with self._engine.begin() as connection:
            self._update_order(connection, id_order, at, {})
            connection.execute(
                update(order_carrier)
                .where(order_carrier.c.id_order == id_order)
                .values(tracking_number=tracking_number)
            )

    def refund(self, id_order: int, *, product_reference: str, quantity: int, at: datetime) -> None:
        """Refund `quantity` units of the order's line with `product_reference`, as a partial refund does.

        Like PrestaShop's partial refund, it updates the line and issues a credit slip (order_slip), and
        leaves the order row, and so orders.date_upd, untouched.
        """
        detail = self._tables.order_detail
        of_line = (detail.c.id_order == id_order, detail.c.product_reference == product_reference)
        with self._engine.begin() as connection:
            line = connection.execute(select(detail).where(*of_line)).first()
            if line is None:
                raise ValueError(f"order {id_order} has no line with reference {product_reference!r}")
            refundable = line.product_quantity - line.product_quantity_refunded
            if not 0 < quantity <= refundable:
                raise ValueError(
                    f"cannot refund {quantity} of {product_reference!r} on order {id_order}: "
                    f"{refundable} refundable"
                )
            refunded = {
                "product_quantity_refunded": line.product_quantity_refunded + quantity,
                "total_refunded_tax_incl": line.total_refunded_tax_incl + quantity * line.unit_price_tax_incl,
                "total_refunded_tax_excl": line.total_refunded_tax_excl + quantity * line.unit_price_tax_excl,
            }
            connection.execute(
                update(detail).where(detail.c.id_order_detail == line.id_order_detail).values(refunded)
            )
            order = connection.execute(
                select(self._tables.orders.c.id_customer).where(self._tables.orders.c.id_order == id_order)
            ).one()
            amount = quantity * line.unit_price_tax_incl
            connection.execute(
                insert(self._tables.order_slip).values(
                    id_customer=order.id_customer,
                    id_order=id_order,
                    total_products_tax_excl=quantity * line.unit_price_tax_excl,
                    total_products_tax_incl=amount,
                    total_shipping_tax_excl=Decimal(0),
                    total_shipping_tax_incl=Decimal(0),
                    amount=amount,
                    partial=1,
                    date_add=at,
                    date_upd=at,
                )
            )

    def mark_sent_by_module(self, id_order: int, *, merchant_id: str, sent: bool = True) -> None:
        """Record the order in the SeQura module's table as the PHP module does (sent=False at checkout)."""
        sequra_order = self._tables.sequra_order
        values = {"sent_to_sequra": int(sent), "merchant_id": merchant_id}
        with self._engine.begin() as connection:
            if not connection.execute(
                update(sequra_order).where(sequra_order.c.order_id == id_order).values(values)
            ).rowcount:
                connection.execute(insert(sequra_order).values(order_id=id_order, **values))

    def corrupt_order(self, id_order: int, **columns: Any) -> None:
        """Overwrite order columns behind PrestaShop's back, as a buggy module or hand-written SQL would."""
        orders = self._tables.orders
        with self._engine.begin() as connection:
            connection.execute(update(orders).where(orders.c.id_order == id_order).values(columns))

    def _update_order(
        self, connection: Connection, id_order: int, at: datetime, values: Mapping[str, Any]
    ) -> None:
        """Update an order and its date_upd as ObjectModel::update does; ValueError if there is no order."""
        orders = self._tables.orders
        changed = update(orders).where(orders.c.id_order == id_order).values(date_upd=at, **values)
        if not connection.execute(changed).rowcount:
            raise ValueError(f"no order {id_order} in {orders.name}")

    def _enter_state(
        self, connection: Connection, id_order: int, id_order_state: int, *, at: datetime, id_employee: int
    ) -> None:
        """Record a state change and its effects on the order, as OrderHistory::changeIdOrderState does."""
        t = self._tables
        state = connection.execute(
            select(t.order_state).where(t.order_state.c.id_order_state == id_order_state)
        ).first()
        if state is None:
            raise ValueError(f"no order state {id_order_state} in {t.order_state.name}")
        order = connection.execute(select(t.orders).where(t.orders.c.id_order == id_order)).one()
        values: dict[str, Any] = {"current_state": id_order_state, "valid": state.logable}
        if state.invoice and not order.invoice_number:
            values |= {
                "invoice_number": _next_number(connection, t.orders.c.invoice_number),
                "invoice_date": at,
            }
        if state.delivery and not order.delivery_number:
            values["delivery_number"] = _next_number(connection, t.orders.c.delivery_number)
        if state.delivery:
            values["delivery_date"] = at  # "even if it was already set by another state change"
        if state.paid:
            values["total_paid_real"] = order.total_paid_tax_incl
        history = {
            "id_employee": id_employee,
            "id_order": id_order,
            "id_order_state": id_order_state,
            "date_add": at,
        }
        connection.execute(insert(t.order_history).values(history))
        self._update_order(connection, id_order, at, values)

    def _product_ids(self, connection: Connection, lines: Sequence[Line]) -> list[int]:
        """A stable product_id per line: the one its reference (or, lacking one, its name) already has."""
        detail = self._tables.order_detail
        references = [line.reference for line in lines if line.reference is not None]
        by_reference = _stable_ids(connection, detail.c.product_id, detail.c.product_reference, references)
        names = [line.name for line in lines if line.reference is None]
        after = max(by_reference.values(), default=0)
        by_name = _stable_ids(connection, detail.c.product_id, detail.c.product_name, names, after=after)
        return [
            by_name[line.name] if line.reference is None else by_reference[line.reference] for line in lines
        ]


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
    returned_ref: str  # shipped, delivered, then fully refunded (state Refunded)
    corrupt_totals_ref: str  # in quarantine_refs: total_paid_tax_incl 7.50 above its lines
    missing_currency_ref: str  # in quarantine_refs: id_currency 99 has no currency row
    unknown_country_ref: str  # in quarantine_refs: its address has id_country 999


class _Buyer(NamedTuple):
    firstname: str
    lastname: str
    email: str
    id_country: int
    address1: str
    address2: str | None
    postcode: str
    city: str
    id_state: int | None
    phone_mobile: str
    dni: str | None


_BUYERS = (
    _Buyer("José", "Ñúñez 🚀", "jose.nunez@example.es", SPAIN, "Calle de Alcalá 42", "3º B", "28014",
           "Madrid", STATE_IDS["M"], "+34 612 345 678", "12345678Z"),
    _Buyer("Zoë", "Ångström", "zoe.angstrom@example.fr", FRANCE, "12 rue de la Paix", "Bâtiment C", "75002",
           "Paris", None, "+33 6 12 34 56 78", None),
    _Buyer("João", "Conceição", "joao.conceicao@example.pt", PORTUGAL, "Rua Augusta 27", "2º Esq.",
           "1100-048", "Lisboa", None, "+351 912 345 678", None),
    _Buyer("María", "García López", "maria.garcia@example.es", SPAIN, "Passeig de Gràcia 92", None, "08008",
           "Barcelona", STATE_IDS["B"], "+34 634 567 890", "87654321X"),
    _Buyer("Françoise", "Lefèvre", "francoise.lefevre@example.fr", FRANCE, "8 place Bellecour", None, "69002",
           "Lyon", None, "+33 7 98 76 54 32", None),
    _Buyer("Íñigo", "Martínez de Pisón", "inigo.mpison@example.es", SPAIN, "Carrer de Colón 15", "Puerta 7",
           "46004", "València", STATE_IDS["V"], "+34 655 443 322", "11223344B"),
    _Buyer("Inês", "Gonçalves", "ines.goncalves@example.pt", PORTUGAL, "Avenida dos Aliados 104", None,
           "4000-065", "Porto", None, "+351 934 567 123", None),
    _Buyer("Lucía", "Fernández 🌻", "lucia.fernandez@example.es", SPAIN, "Calle Mayor 5", "Bajo", "28013",
           "Madrid", STATE_IDS["M"], "+34 699 112 233", "55667788K"),
    _Buyer("Renée", "Dubois-Lemaître", "renee.dubois@example.fr", FRANCE, "3 quai du Port", None, "13002",
           "Marseille", None, "+33 6 55 44 33 22", None),
    _Buyer("Giulia", "Rossi", "giulia.rossi@example.it", ITALY, "Via Montenapoleone 8", None, "20121",
           "Milano", STATE_IDS["MI"], "+39 347 123 4567", None),
)  # fmt: skip
_GUEST = _Buyer("Pau", "Vilà i Puig", "pau.vila@example.cat", SPAIN, "Carrer de Sants 200", None, "08028",
                "Barcelona", STATE_IDS["B"], "+34 622 001 122", "44556677L")  # fmt: skip
_FORMER_CUSTOMER = _Buyer("Marta", "Sánchez Ruiz", "marta.sanchez@example.es", SPAIN,
                          "Avenida de América 10", "5º A", "28002", "Madrid", STATE_IDS["M"],
                          "+34 611 998 877", "99887766J")  # fmt: skip
_UNKNOWN_COUNTRY = 999
_ABROAD = _Buyer("Hans", "Müller", "hans.mueller@example.de", _UNKNOWN_COUNTRY, "Torstraße 1", None, "10119",
                 "Berlin", None, "+49 151 2345 6789", None)  # fmt: skip

_CATALOGUE = (
    Line("Camiseta de algodón orgánico", "TSH-ORG-001", 1, Decimal("19.95")),
    Line("Zapatillas trail Águila", "SHO-TRL-042", 1, Decimal("89.90"), weight=Decimal("0.9")),
    Line("Mochila 20 L", "BAG-020", 1, Decimal("49.00")),
    Line("Calcetines técnicos (pack 3)", "SOC-TEC-3", 1, Decimal("12.50"), weight=Decimal("0.15")),
    Line("Gorra bordada «Montseny»", "CAP-MTS", 1, Decimal("17.00"), weight=Decimal("0.1")),
    Line("Botella térmica 750 ml", "BOT-750", 1, Decimal("24.99")),
    Line("Chaqueta cortavientos", "JKT-WND-7", 1, Decimal("119.00"), weight=Decimal("0.7")),
    Line("Libro: Rutas por los Pirineos", "BK-PIR-2", 1, Decimal("22.00"), tax_rate=Decimal("4.000")),
    Line("Gafas de sol polarizadas", "SUN-POL", 1, Decimal("59.95"), weight=Decimal("0.1")),
    Line("Crema solar SPF50 🌞", None, 1, Decimal("14.90"), weight=Decimal("0.2")),
    Line("Mapa topográfico 1:25.000", "MAP-TOPO", 1, Decimal("9.95"), weight=Decimal("0.1")),
    Line("Forro polar", "FLC-100", 1, Decimal("39.90")),
)
_BULK = tuple(
    Line(f"Tornillo inoxidable M{3 + i % 6}×{10 + i % 40} mm", f"SCR-{i:04d}", 1 + i % 4,
         Decimal("0.35") + Decimal("0.05") * (i % 10), weight=Decimal("0.004"))
    for i in range(500)
)  # fmt: skip
_DEMO_SEED = 20240611


def _products_wt(lines: Iterable[Line]) -> Decimal:
    """The lines' total, tax included."""
    return _total(line.unit_price_tax_incl * line.quantity for line in lines)


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
        return [replace(item, quantity=self.rng.randint(1, 3)) for item in self.rng.sample(_CATALOGUE, size)]

    def buyer(self, buyer: _Buyer, *, is_guest: bool = False, deleted: bool = False) -> tuple[int, int]:
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
    buyers = [seed.buyer(buyer) for buyer in _BUYERS]
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

    socks, backpack = _CATALOGUE[3], _CATALOGUE[2]
    lines = [replace(socks, quantity=3), backpack]
    partial_refund_ref, id_order = seed.order(buyers[3], correos, 90, lines=lines)
    seed.ship(id_order, 80)
    writer.refund(id_order, product_reference=str(socks.reference), quantity=1, at=seed.hours_ago(12))

    lines = [_CATALOGUE[6], _CATALOGUE[7]]
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
    reference, id_order = seed.order(buyers[7], correos, 70)
    writer.set_state(id_order, CANCELED, at=seed.hours_ago(65), id_employee=1)
    ignored.append(reference)

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
        returned_ref=returned_ref,
        corrupt_totals_ref=corrupt_totals_ref,
        missing_currency_ref=missing_currency_ref,
        unknown_country_ref=unknown_country_ref,
    )
    shipped_edge_cases = [
        value
        for name, value in vars(edge_cases).items()
        if name.endswith("_ref") and value not in edge_cases.quarantine_refs
    ]
    return replace(edge_cases, shipped_refs=(*shipped, *shipped_edge_cases))
