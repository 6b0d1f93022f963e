"""A PrestaShop shop writer that writes rows the way PrestaShop itself does, one transaction per call.

`ShopWriter` works through SQLAlchemy Core against `ShopTables`, on SQLite (`create_shop_schema`) and on
MySQL/MariaDB with PrestaShop's real DDL, filling every NOT NULL column without a default so strict mode
accepts the rows. All datetimes are the shop's naive local time, as PrestaShop stores them (PS_TIMEZONE).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any, Literal

from sqlalchemy import Column, String, Table, func, insert, select, type_coerce, update
from sqlalchemy.engine import Connection, Engine

from schemas.prestashop import ShopTables
from schemas.prestashop_types import ZERO_DATETIME
from seeding.vocabulary import (
    CANCELED,
    CARRIER_TAX_RATE,
    COUNTRIES,
    COUNTRY_NAMES,
    CURRENCIES,
    DELIVERED,
    EUR,
    LANGS,
    ORDER_STATE_NAMES,
    ORDER_STATES,
    PAYMENT_ACCEPTED,
    PAYMENT_LABELS,
    RETURN_COMPLETED,
    SHIPPED,
    SHOPS,
    SPANISH,
    STATES,
    Discount,
    Line,
    OrderAmounts,
    six_places,
    tax_excl,
    total_of,
    unit_prices,
)

_ZERO_DATETIME = type_coerce(ZERO_DATETIME, String)  # bound as text, so no DateTime processor sees year 0


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


def _detail_row(
    id_order: int, id_shop: int, line: Line, prices: tuple[Decimal, Decimal], product_id: int
) -> dict[str, Any]:
    """The order_detail row of one line, as PaymentModule::validateOrder (or the order page) writes it."""
    unit, unit_excl = prices
    return {
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
                (t.lang, LANGS),
                (t.shop, SHOPS),
                (t.currency, CURRENCIES),
                (t.country, COUNTRIES),
                (t.country_lang, COUNTRY_NAMES),
                (t.state, STATES),
                (t.order_state, ORDER_STATES),
                (t.order_state_lang, ORDER_STATE_NAMES),
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
        amounts = OrderAmounts.of(lines, discounts, shipping, wrapping)
        secure_key = select(t.customer.c.secure_key).where(t.customer.c.id_customer == id_customer)
        rate = select(t.currency.c.conversion_rate).where(t.currency.c.id_currency == id_currency)
        discounts_incl = total_of(incl for incl, _ in amounts.discounts)
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
            "payment": PAYMENT_LABELS.get(module, module),
            "conversion_rate": func.coalesce(rate.scalar_subquery(), 1),
            "module": module,
            "gift": int(gift),
            "gift_message": gift_message,
            "total_discounts": discounts_incl,
            "total_discounts_tax_incl": discounts_incl,
            "total_discounts_tax_excl": total_of(excl for _, excl in amounts.discounts),
            "total_paid": amounts.paid,
            "total_paid_tax_incl": amounts.paid,
            "total_paid_tax_excl": amounts.paid_excl,
            "total_paid_real": Decimal(0),
            "total_products": amounts.products,
            "total_products_wt": amounts.products_wt,
            "total_shipping": amounts.shipping,
            "total_shipping_tax_incl": amounts.shipping,
            "total_shipping_tax_excl": amounts.shipping_excl,
            "carrier_tax_rate": CARRIER_TAX_RATE,
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
                    _detail_row(id_order, id_shop, line, prices, product_id)
                    for line, prices, product_id in zip(lines, amounts.units, product_ids, strict=True)
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
                "weight": total_of(line.weight * line.quantity for line in lines),
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

    def cancel_order(self, id_order: int, *, at: datetime) -> None:
        """Move an order to the shop's cancelled state (PS_OS_CANCELED), as the back office does."""
        cfg = self._tables.configuration
        with self._engine.connect() as connection:
            value = connection.scalar(
                select(cfg.c.value).where(cfg.c.name == "PS_OS_CANCELED", cfg.c.id_shop.is_(None))
            )
        if value is None or not str(value).isdigit():
            raise ValueError(f"PS_OS_CANCELED is not set in {cfg.name}")
        self.set_state(id_order, int(value), at=at)

    def move_delivery_country(self, id_order: int, iso_code: str, *, at: datetime) -> int:
        """Send an order to another country: its delivery address edited (a new row) and the order repointed.

        Returns the new id_address.
        """
        t = self._tables
        with self._engine.connect() as connection:
            id_country = connection.scalar(
                select(t.country.c.id_country).where(t.country.c.iso_code == iso_code)
            )
            id_address = connection.scalar(
                select(t.orders.c.id_address_delivery).where(t.orders.c.id_order == id_order)
            )
        if id_country is None or id_address is None:
            raise ValueError(f"no country {iso_code} in {t.country.name}, or no order {id_order}")
        moved = self.edit_address(id_address, at=at, id_country=id_country)
        self.repoint_order_address(id_order, "delivery", moved, at=at)
        return moved

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
        with self._engine.begin() as connection:
            line = self._line(connection, id_order, product_reference, quantity)
            self._credit(connection, id_order, line, quantity, at, "product_quantity_refunded")

    def return_products(
        self, id_order: int, *, product_reference: str, quantity: int, at: datetime, credit_slip: bool = True
    ) -> None:
        """Take back `quantity` units of a delivered line, as a merchandise return does.

        Writes the return (order_return, completed, with its order_return_detail) and adds the units to the
        line's product_quantity_return; with `credit_slip` (the refund made with it) also the credit slip.
        The order row is left untouched.
        """
        t = self._tables
        with self._engine.begin() as connection:
            line = self._line(connection, id_order, product_reference, quantity)
            id_customer = connection.scalar(
                select(t.orders.c.id_customer).where(t.orders.c.id_order == id_order)
            )
            id_return = connection.execute(
                insert(t.order_return).values(
                    id_customer=id_customer,
                    id_order=id_order,
                    state=RETURN_COMPLETED,
                    question="Devolución",
                    date_add=at,
                    date_upd=at,
                )
            ).inserted_primary_key[0]
            connection.execute(
                insert(t.order_return_detail).values(
                    id_order_return=id_return,
                    id_order_detail=line.id_order_detail,
                    id_customization=0,
                    product_quantity=quantity,
                )
            )
            self._credit(
                connection, id_order, line, quantity, at, "product_quantity_return", slip=credit_slip
            )

    def add_line(self, id_order: int, line: Line, *, at: datetime) -> None:
        """Add a product line from the order page, as the back office does before the order ships."""
        t = self._tables
        with self._engine.begin() as connection:
            id_shop = connection.scalar(select(t.orders.c.id_shop).where(t.orders.c.id_order == id_order))
            if id_shop is None:
                raise ValueError(f"no order {id_order} in {t.orders.name}")
            [product_id] = self._product_ids(connection, [line])
            prices = unit_prices(line)
            connection.execute(
                insert(t.order_detail).values(_detail_row(id_order, id_shop, line, prices, product_id))
            )
            self._retotal(connection, id_order, at)

    def add_discount(self, id_order: int, discount: Discount, *, at: datetime) -> None:
        """Add a discount (cart rule) from the order page; the order's totals follow."""
        t = self._tables
        with self._engine.begin() as connection:
            [id_cart_rule] = _stable_ids(
                connection, t.order_cart_rule.c.id_cart_rule, t.order_cart_rule.c.name, [discount.name]
            ).values()
            value = six_places(discount.value)
            connection.execute(
                insert(t.order_cart_rule).values(
                    id_order=id_order,
                    id_cart_rule=id_cart_rule,
                    id_order_invoice=0,
                    name=discount.name,
                    value=value,
                    value_tax_excl=tax_excl(value, CARRIER_TAX_RATE),
                    free_shipping=int(discount.free_shipping),
                    deleted=0,
                )
            )
            self._retotal(connection, id_order, at)

    def change_shipping(self, id_order: int, amount: Decimal, *, at: datetime) -> None:
        """Set the order's shipping cost from the order page (order row and order_carrier); totals follow."""
        t = self._tables
        shipping = six_places(amount)
        shipping_excl = tax_excl(shipping, CARRIER_TAX_RATE)
        with self._engine.begin() as connection:
            connection.execute(
                update(t.orders)
                .where(t.orders.c.id_order == id_order)
                .values(
                    total_shipping=shipping,
                    total_shipping_tax_incl=shipping,
                    total_shipping_tax_excl=shipping_excl,
                )
            )
            connection.execute(
                update(t.order_carrier)
                .where(t.order_carrier.c.id_order == id_order)
                .values(shipping_cost_tax_incl=shipping, shipping_cost_tax_excl=shipping_excl)
            )
            self._retotal(connection, id_order, at)

    def _line(self, connection: Connection, id_order: int, product_reference: str, quantity: int) -> Any:
        """The order's line with `product_reference`; ValueError unless `quantity` units are still kept."""
        detail = self._tables.order_detail
        line = connection.execute(
            select(detail).where(
                detail.c.id_order == id_order, detail.c.product_reference == product_reference
            )
        ).first()
        if line is None:
            raise ValueError(f"order {id_order} has no line with reference {product_reference!r}")
        kept = line.product_quantity - line.product_quantity_refunded - line.product_quantity_return
        if not 0 < quantity <= kept:
            raise ValueError(
                f"cannot take back {quantity} of {product_reference!r} on order {id_order}: {kept} kept"
            )
        return line

    def _credit(
        self,
        connection: Connection,
        id_order: int,
        line: Any,
        quantity: int,
        at: datetime,
        counter: str,
        *,
        slip: bool = True,
    ) -> None:
        """Count `quantity` units of `line` refunded or returned; with `slip`, refund them (credit slip)."""
        t = self._tables
        values: dict[str, Any] = {counter: getattr(line, counter) + quantity}
        if slip:
            values |= {
                "total_refunded_tax_incl": line.total_refunded_tax_incl + quantity * line.unit_price_tax_incl,
                "total_refunded_tax_excl": line.total_refunded_tax_excl + quantity * line.unit_price_tax_excl,
            }
        connection.execute(
            update(t.order_detail)
            .where(t.order_detail.c.id_order_detail == line.id_order_detail)
            .values(values)
        )
        if not slip:
            return
        id_customer = connection.scalar(select(t.orders.c.id_customer).where(t.orders.c.id_order == id_order))
        amount = quantity * line.unit_price_tax_incl
        connection.execute(
            insert(t.order_slip).values(
                id_customer=id_customer,
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

    def _retotal(self, connection: Connection, id_order: int, at: datetime) -> None:
        """Work the order's totals out again from its lines, discounts and shipping, like the order page."""
        t = self._tables
        detail, rules = t.order_detail, t.order_cart_rule
        products_wt, products = connection.execute(
            select(
                func.coalesce(func.sum(detail.c.total_price_tax_incl), 0),
                func.coalesce(func.sum(detail.c.total_price_tax_excl), 0),
            ).where(detail.c.id_order == id_order)
        ).one()
        discounts, discounts_excl = connection.execute(
            select(
                func.coalesce(func.sum(rules.c.value), 0), func.coalesce(func.sum(rules.c.value_tax_excl), 0)
            ).where(rules.c.id_order == id_order)
        ).one()
        order = connection.execute(select(t.orders).where(t.orders.c.id_order == id_order)).one()
        paid = max(
            Decimal(0),
            Decimal(products_wt)
            + order.total_shipping_tax_incl
            + order.total_wrapping_tax_incl
            - Decimal(discounts),
        )
        paid_excl = max(
            Decimal(0),
            Decimal(products)
            + order.total_shipping_tax_excl
            + order.total_wrapping_tax_excl
            - Decimal(discounts_excl),
        )
        values = {
            "total_products": six_places(Decimal(products)),
            "total_products_wt": six_places(Decimal(products_wt)),
            "total_discounts": six_places(Decimal(discounts)),
            "total_discounts_tax_incl": six_places(Decimal(discounts)),
            "total_discounts_tax_excl": six_places(Decimal(discounts_excl)),
            "total_paid": six_places(paid),
            "total_paid_tax_incl": six_places(paid),
            "total_paid_tax_excl": six_places(paid_excl),
        }
        self._update_order(connection, id_order, at, values)

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
