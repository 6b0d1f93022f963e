"""The words seeded shops are written in: a fresh install's data, buyers, products and how amounts add up.

The demo shop and the generated big shops share them, so both read like the same PrestaShop shop. Ids are the
ones PrestaShop's installer gives (install-dev/data/xml), so rows written with them look like a real shop's.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from typing import Any, NamedTuple

# Default order state ids of a fresh install; real shops add their own, so the ETL never assumes these.
AWAITING_CHECK_PAYMENT = 1
PAYMENT_ACCEPTED = 2
PROCESSING_IN_PROGRESS = 3
SHIPPED = 4
DELIVERED = 5
CANCELED = 6
REFUNDED = 7
AWAITING_BANK_WIRE = 10
RETURN_COMPLETED = 5  # order_return.state of a return whose goods came back and were refunded (install data)

# PrestaShop's own ids for these countries (install data).
GERMANY, SPAIN, FRANCE, ITALY, PORTUGAL = 1, 6, 8, 10, 15

SPANISH, ENGLISH = 1, 2
EUR, GBP = 1, 2
EUROPE = 1  # id_zone

SIX_PLACES = Decimal("0.000001")
CARRIER_TAX_RATE = Decimal("21.000")
PAYMENT_LABELS = {
    "sequrapayment": "seQura",
    "ps_checkpayment": "Payments by check",
    "ps_wirepayment": "Bank transfer",
}


def _rows(columns: str, values: Iterable[Sequence[Any]]) -> list[dict[str, Any]]:
    """Rows to insert, from space-separated column names and one tuple of values per row."""
    names = columns.split()
    return [dict(zip(names, row, strict=True)) for row in values]


LANGS = _rows(
    "id_lang name active iso_code language_code locale date_format_lite date_format_full is_rtl",
    [
        (SPANISH, "Español (Spanish)", 1, "es", "es-es", "es-ES", "d/m/Y", "d/m/Y H:i:s", 0),
        (ENGLISH, "English (English)", 1, "en", "en-us", "en-US", "m/d/Y", "m/d/Y H:i:s", 0),
    ],
)
SHOPS = _rows(
    "id_shop id_shop_group name color id_category theme_name active deleted",
    [(1, 1, "Demo shop", "", 2, "classic", 1, 0)],
)
CURRENCIES = _rows(
    "id_currency name iso_code numeric_iso_code precision conversion_rate",
    [
        (EUR, "Euro", "EUR", "978", 2, Decimal("1.000000")),
        (GBP, "British Pound", "GBP", "826", 2, Decimal("0.85")),
    ],
)
COUNTRIES = _rows(
    "id_country id_zone iso_code call_prefix active contains_states need_identification_number "
    "zip_code_format display_tax_label",
    [
        (GERMANY, EUROPE, "DE", 49, 1, 0, 0, "NNNNN", 1),
        (SPAIN, EUROPE, "ES", 34, 1, 1, 1, "NNNNN", 1),
        (FRANCE, EUROPE, "FR", 33, 1, 0, 0, "NNNNN", 1),
        (ITALY, EUROPE, "IT", 39, 1, 1, 0, "NNNNN", 1),
        (PORTUGAL, EUROPE, "PT", 351, 1, 0, 0, "NNNN-NNN", 1),
    ],
)
COUNTRY_NAMES = _rows(
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
STATES = _rows(
    "id_state id_country id_zone name iso_code active",
    [
        (1, SPAIN, EUROPE, "Barcelona", "B", 1),
        (2, SPAIN, EUROPE, "Madrid", "M", 1),
        (3, SPAIN, EUROPE, "Valencia", "V", 1),
        (4, ITALY, EUROPE, "Milano", "MI", 1),
    ],
)
STATE_IDS = {row["iso_code"]: row["id_state"] for row in STATES}
"""The demo shop's state ids by ISO code: B, M, V (Spain) and MI (Italy)."""

# install-dev/data/xml/order_state.xml (see prestashop-schema.md §2): unremovable, none hidden.
ORDER_STATES = _rows(
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
ORDER_STATE_NAMES = _rows(
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


def six_places(amount: Decimal) -> Decimal:
    """An amount as a `decimal(20,6)` column keeps it (MySQL rounds half up)."""
    return amount.quantize(SIX_PLACES, rounding=ROUND_HALF_UP)


def tax_excl(amount_tax_incl: Decimal, tax_rate: Decimal) -> Decimal:
    """The tax-excluded equivalent of a tax-included amount taxed at `tax_rate` percent."""
    return six_places(amount_tax_incl * 100 / (100 + tax_rate))


def total_of(amounts: Iterable[Decimal]) -> Decimal:
    """The sum of some amounts, a Decimal even when there are none."""
    return sum(amounts, Decimal(0))


def unit_prices(line: Line) -> tuple[Decimal, Decimal]:
    """A line's unit price tax included (as stored) and tax excluded."""
    unit = six_places(line.unit_price_tax_incl)
    return unit, tax_excl(unit, line.tax_rate)


@dataclass(frozen=True)
class OrderAmounts:
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
    ) -> OrderAmounts:
        """Work out the amounts; discounts split into tax incl/excl in proportion to the products."""
        units = [unit_prices(line) for line in lines]
        products_wt = total_of(unit * line.quantity for (unit, _), line in zip(units, lines, strict=True))
        products = total_of(
            unit_excl * line.quantity for (_, unit_excl), line in zip(units, lines, strict=True)
        )
        values = [six_places(discount.value) for discount in discounts]
        split = [
            (value, six_places(value * products / products_wt) if products_wt else value) for value in values
        ]
        shipping, wrapping = six_places(shipping), six_places(wrapping)
        shipping_excl = tax_excl(shipping, CARRIER_TAX_RATE)
        wrapping_excl = tax_excl(wrapping, CARRIER_TAX_RATE)
        return cls(
            units=units,
            discounts=split,
            products_wt=products_wt,
            products=products,
            shipping=shipping,
            shipping_excl=shipping_excl,
            wrapping=wrapping,
            wrapping_excl=wrapping_excl,
            paid=max(Decimal(0), products_wt + shipping + wrapping - total_of(incl for incl, _ in split)),
            paid_excl=max(
                Decimal(0), products + shipping_excl + wrapping_excl - total_of(excl for _, excl in split)
            ),
        )


class Buyer(NamedTuple):
    """A buyer and the address they ship to."""

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


BUYERS = (
    Buyer("José", "Ñúñez 🚀", "jose.nunez@example.es", SPAIN, "Calle de Alcalá 42", "3º B", "28014",
           "Madrid", STATE_IDS["M"], "+34 612 345 678", "12345678Z"),
    Buyer("Zoë", "Ångström", "zoe.angstrom@example.fr", FRANCE, "12 rue de la Paix", "Bâtiment C", "75002",
           "Paris", None, "+33 6 12 34 56 78", None),
    Buyer("João", "Conceição", "joao.conceicao@example.pt", PORTUGAL, "Rua Augusta 27", "2º Esq.",
           "1100-048", "Lisboa", None, "+351 912 345 678", None),
    Buyer("María", "García López", "maria.garcia@example.es", SPAIN, "Passeig de Gràcia 92", None, "08008",
           "Barcelona", STATE_IDS["B"], "+34 634 567 890", "87654321X"),
    Buyer("Françoise", "Lefèvre", "francoise.lefevre@example.fr", FRANCE, "8 place Bellecour", None, "69002",
           "Lyon", None, "+33 7 98 76 54 32", None),
    Buyer("Íñigo", "Martínez de Pisón", "inigo.mpison@example.es", SPAIN, "Carrer de Colón 15", "Puerta 7",
           "46004", "València", STATE_IDS["V"], "+34 655 443 322", "11223344B"),
    Buyer("Inês", "Gonçalves", "ines.goncalves@example.pt", PORTUGAL, "Avenida dos Aliados 104", None,
           "4000-065", "Porto", None, "+351 934 567 123", None),
    Buyer("Lucía", "Fernández 🌻", "lucia.fernandez@example.es", SPAIN, "Calle Mayor 5", "Bajo", "28013",
           "Madrid", STATE_IDS["M"], "+34 699 112 233", "55667788K"),
    Buyer("Renée", "Dubois-Lemaître", "renee.dubois@example.fr", FRANCE, "3 quai du Port", None, "13002",
           "Marseille", None, "+33 6 55 44 33 22", None),
    Buyer("Giulia", "Rossi", "giulia.rossi@example.it", ITALY, "Via Montenapoleone 8", None, "20121",
           "Milano", STATE_IDS["MI"], "+39 347 123 4567", None),
)  # fmt: skip

CATALOGUE = (
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
