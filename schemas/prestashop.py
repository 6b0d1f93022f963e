"""The PrestaShop tables the ETL reads, as SQLAlchemy Core tables faithful to PrestaShop's own DDL.

Each table carries every column that exists in PrestaShop 1.7.8.1, 8.0 and 9.1.0 (install-dev/data/
db_structure.sql), with the 8.0 types, nullability, server defaults and primary keys (9.1.0's for `lang` and
`shop`, which are Doctrine entities before 9.x). Columns only some versions have are left out:
`orders.shipping_number` (1.7 only) and `carrier.id_tax_rules_group` (1.7 only). Single-column KEYs of the
real DDL are mirrored as indexes, so the SQLite demo shop joins the way MySQL does. seeding/ddl/
holds the real DDL these declarations are checked against.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache

from sqlalchemy import (
    Column,
    Integer,
    MetaData,
    Numeric,
    PrimaryKeyConstraint,
    SmallInteger,
    String,
    Table,
    Text,
    text,
)
from sqlalchemy.engine import Engine
from sqlalchemy.schema import SchemaItem

from schemas.errors import SettingError
from schemas.prestashop_types import Money, ShopDate, ShopDateTime

_TABLE_PREFIX = re.compile(r"[A-Za-z0-9_]*")  # PrestaShop's Validate::isTablePrefix, which allows ''


@dataclass(frozen=True)
class ShopTables:
    """The PrestaShop tables the ETL reads, named with one shop's table prefix."""

    metadata: MetaData
    prefix: str
    orders: Table
    order_detail: Table
    order_history: Table
    order_state: Table
    order_state_lang: Table
    order_carrier: Table
    order_cart_rule: Table
    order_slip: Table
    order_return: Table
    order_return_detail: Table
    customer: Table
    address: Table
    country: Table
    country_lang: Table
    state: Table
    currency: Table
    carrier: Table
    carrier_lang: Table
    configuration: Table
    lang: Table
    shop: Table
    sequra_order: Table


def shop_tables(prefix: str = "ps_") -> ShopTables:
    """The shop's tables as `prefix + name`, declared once per prefix; SettingError on a bad prefix."""
    return _declared_tables(prefix)


@cache
def _declared_tables(prefix: str) -> ShopTables:
    """Declare the shop's tables as `prefix + name` in a `MetaData` of their own."""
    if not _TABLE_PREFIX.fullmatch(prefix):
        raise SettingError(
            "SHOP_TABLE_PREFIX",
            f"{prefix!r} is not a PrestaShop table prefix: use only letters, digits and underscores, like "
            "the default 'ps_' (it is _DB_PREFIX_ in the shop's app/config/parameters.php)",
        )
    metadata = MetaData()

    def table(name: str, *columns: SchemaItem) -> Table:
        return Table(f"{prefix}{name}", metadata, *columns)

    orders = table(
        "orders",
        Column("id_order", Integer, primary_key=True),
        Column("reference", String(9), index=True),
        Column("id_shop_group", Integer, nullable=False, server_default="1", index=True),
        Column("id_shop", Integer, nullable=False, server_default="1", index=True),
        Column("id_carrier", Integer, nullable=False, index=True),
        Column("id_lang", Integer, nullable=False, index=True),
        Column("id_customer", Integer, nullable=False, index=True),
        Column("id_cart", Integer, nullable=False, index=True),
        Column("id_currency", Integer, nullable=False, index=True),
        Column("id_address_delivery", Integer, nullable=False, index=True),
        Column("id_address_invoice", Integer, nullable=False, index=True),
        Column("current_state", Integer, nullable=False, index=True),
        Column("secure_key", String(32), nullable=False, server_default="-1"),
        Column("payment", String(255), nullable=False),
        Column("conversion_rate", Numeric(13, 6, asdecimal=True), nullable=False, server_default="1"),
        Column("module", String(255)),
        Column("recyclable", SmallInteger, nullable=False, server_default="0"),
        Column("gift", SmallInteger, nullable=False, server_default="0"),
        Column("gift_message", Text),
        Column("mobile_theme", SmallInteger, nullable=False, server_default="0"),
        Column("total_discounts", Money, nullable=False, server_default="0.00"),
        Column("total_discounts_tax_incl", Money, nullable=False, server_default="0.00"),
        Column("total_discounts_tax_excl", Money, nullable=False, server_default="0.00"),
        Column("total_paid", Money, nullable=False, server_default="0.00"),
        Column("total_paid_tax_incl", Money, nullable=False, server_default="0.00"),
        Column("total_paid_tax_excl", Money, nullable=False, server_default="0.00"),
        Column("total_paid_real", Money, nullable=False, server_default="0.00"),
        Column("total_products", Money, nullable=False, server_default="0.00"),
        Column("total_products_wt", Money, nullable=False, server_default="0.00"),
        Column("total_shipping", Money, nullable=False, server_default="0.00"),
        Column("total_shipping_tax_incl", Money, nullable=False, server_default="0.00"),
        Column("total_shipping_tax_excl", Money, nullable=False, server_default="0.00"),
        Column("carrier_tax_rate", Numeric(10, 3, asdecimal=True), nullable=False, server_default="0.00"),
        Column("total_wrapping", Money, nullable=False, server_default="0.00"),
        Column("total_wrapping_tax_incl", Money, nullable=False, server_default="0.00"),
        Column("total_wrapping_tax_excl", Money, nullable=False, server_default="0.00"),
        Column("round_mode", SmallInteger, nullable=False, server_default="2"),
        Column("round_type", SmallInteger, nullable=False, server_default="1"),
        Column("invoice_number", Integer, nullable=False, server_default="0", index=True),
        Column("delivery_number", Integer, nullable=False, server_default="0"),
        Column("invoice_date", ShopDateTime, nullable=False),
        Column("delivery_date", ShopDateTime, nullable=False),
        Column("valid", Integer, nullable=False, server_default="0"),
        Column("date_add", ShopDateTime, nullable=False, index=True),
        Column("date_upd", ShopDateTime, nullable=False),
        Column("note", Text),
    )
    order_detail = table(
        "order_detail",
        Column("id_order_detail", Integer, primary_key=True),
        Column("id_order", Integer, nullable=False, index=True),
        Column("id_order_invoice", Integer),
        Column("id_warehouse", Integer, server_default="0"),
        Column("id_shop", Integer, nullable=False),
        Column("product_id", Integer, nullable=False),
        Column("product_attribute_id", Integer, index=True),
        Column("id_customization", Integer, server_default="0"),
        Column("product_name", Text, nullable=False),
        Column("product_quantity", Integer, nullable=False, server_default="0"),
        Column("product_quantity_in_stock", Integer, nullable=False, server_default="0"),
        Column("product_quantity_refunded", Integer, nullable=False, server_default="0"),
        Column("product_quantity_return", Integer, nullable=False, server_default="0"),
        Column("product_quantity_reinjected", Integer, nullable=False, server_default="0"),
        Column("product_price", Money, nullable=False, server_default="0.000000"),
        Column("reduction_percent", Numeric(5, 2, asdecimal=True), nullable=False, server_default="0.00"),
        Column("reduction_amount", Money, nullable=False, server_default="0.000000"),
        Column("reduction_amount_tax_incl", Money, nullable=False, server_default="0.000000"),
        Column("reduction_amount_tax_excl", Money, nullable=False, server_default="0.000000"),
        Column("group_reduction", Numeric(5, 2, asdecimal=True), nullable=False, server_default="0.00"),
        Column("product_quantity_discount", Money, nullable=False, server_default="0.000000"),
        Column("product_ean13", String(13)),
        Column("product_isbn", String(32)),
        Column("product_upc", String(12)),
        Column("product_mpn", String(40)),
        Column("product_reference", String(64)),
        Column("product_supplier_reference", String(64)),
        Column("product_weight", Numeric(20, 6, asdecimal=True), nullable=False),
        Column("id_tax_rules_group", Integer, server_default="0", index=True),
        Column("tax_computation_method", SmallInteger, nullable=False, server_default="0"),
        Column("tax_name", String(16), nullable=False),
        Column("tax_rate", Numeric(10, 3, asdecimal=True), nullable=False, server_default="0.000"),
        Column("ecotax", Numeric(17, 6, asdecimal=True), nullable=False, server_default="0.000000"),
        Column("ecotax_tax_rate", Numeric(5, 3, asdecimal=True), nullable=False, server_default="0.000"),
        Column("discount_quantity_applied", SmallInteger, nullable=False, server_default="0"),
        Column("download_hash", String(255)),
        Column("download_nb", Integer, server_default="0"),
        Column("download_deadline", ShopDateTime),
        Column("total_price_tax_incl", Money, nullable=False, server_default="0.000000"),
        Column("total_price_tax_excl", Money, nullable=False, server_default="0.000000"),
        Column("unit_price_tax_incl", Money, nullable=False, server_default="0.000000"),
        Column("unit_price_tax_excl", Money, nullable=False, server_default="0.000000"),
        Column("total_shipping_price_tax_incl", Money, nullable=False, server_default="0.000000"),
        Column("total_shipping_price_tax_excl", Money, nullable=False, server_default="0.000000"),
        Column("purchase_supplier_price", Money, nullable=False, server_default="0.000000"),
        Column("original_product_price", Money, nullable=False, server_default="0.000000"),
        Column("original_wholesale_price", Money, nullable=False, server_default="0.000000"),
        Column("total_refunded_tax_excl", Money, nullable=False, server_default="0.000000"),
        Column("total_refunded_tax_incl", Money, nullable=False, server_default="0.000000"),
    )
    order_history = table(
        "order_history",
        Column("id_order_history", Integer, primary_key=True),
        Column("id_employee", Integer, nullable=False, index=True),
        Column("id_order", Integer, nullable=False, index=True),
        Column("id_order_state", Integer, nullable=False, index=True),
        Column("date_add", ShopDateTime, nullable=False),
    )
    order_state = table(
        "order_state",
        Column("id_order_state", Integer, primary_key=True),
        Column("invoice", SmallInteger, server_default="0"),
        Column("send_email", SmallInteger, nullable=False, server_default="0"),
        Column("module_name", String(255), index=True),
        Column("color", String(32)),
        Column("unremovable", SmallInteger, nullable=False),
        Column("hidden", SmallInteger, nullable=False, server_default="0"),
        Column("logable", SmallInteger, nullable=False, server_default="0"),
        Column("delivery", SmallInteger, nullable=False, server_default="0"),
        Column("shipped", SmallInteger, nullable=False, server_default="0"),
        Column("paid", SmallInteger, nullable=False, server_default="0"),
        Column("pdf_invoice", SmallInteger, nullable=False, server_default="0"),
        Column("pdf_delivery", SmallInteger, nullable=False, server_default="0"),
        Column("deleted", SmallInteger, nullable=False, server_default="0"),
    )
    order_state_lang = table(
        "order_state_lang",
        Column("id_order_state", Integer, primary_key=True, autoincrement=False),
        Column("id_lang", Integer, primary_key=True, autoincrement=False),
        Column("name", String(64), nullable=False),
        Column("template", String(64), nullable=False),
    )
    order_carrier = table(
        "order_carrier",
        Column("id_order_carrier", Integer, primary_key=True),
        Column("id_order", Integer, nullable=False, index=True),
        Column("id_carrier", Integer, nullable=False, index=True),
        Column("id_order_invoice", Integer, index=True),
        Column("weight", Numeric(20, 6, asdecimal=True)),
        Column("shipping_cost_tax_excl", Money),
        Column("shipping_cost_tax_incl", Money),
        Column("tracking_number", String(64)),
        Column("date_add", ShopDateTime, nullable=False),
    )
    order_cart_rule = table(
        "order_cart_rule",
        Column("id_order_cart_rule", Integer, primary_key=True),
        Column("id_order", Integer, nullable=False, index=True),
        Column("id_cart_rule", Integer, nullable=False, index=True),
        Column("id_order_invoice", Integer, server_default="0"),
        Column("name", String(254), nullable=False),
        Column("value", Money, nullable=False, server_default="0.000000"),
        Column("value_tax_excl", Money, nullable=False, server_default="0.000000"),
        Column("free_shipping", SmallInteger, nullable=False, server_default="0"),
        Column("deleted", SmallInteger, nullable=False, server_default="0"),
    )
    order_slip = table(
        "order_slip",
        Column("id_order_slip", Integer, primary_key=True),
        Column("conversion_rate", Numeric(13, 6, asdecimal=True), nullable=False, server_default="1"),
        Column("id_customer", Integer, nullable=False, index=True),
        Column("id_order", Integer, nullable=False, index=True),
        Column("total_products_tax_excl", Money),
        Column("total_products_tax_incl", Money),
        Column("total_shipping_tax_excl", Money),
        Column("total_shipping_tax_incl", Money),
        Column("shipping_cost", SmallInteger, nullable=False, server_default="0"),
        Column("amount", Money, nullable=False, server_default="0.000000"),
        Column("shipping_cost_amount", Money, nullable=False, server_default="0.000000"),
        Column("partial", SmallInteger, nullable=False),
        Column("order_slip_type", SmallInteger, nullable=False, server_default="0"),
        Column("date_add", ShopDateTime, nullable=False),
        Column("date_upd", ShopDateTime, nullable=False),
    )
    order_return = table(
        "order_return",
        Column("id_order_return", Integer, primary_key=True),
        Column("id_customer", Integer, nullable=False, index=True),
        Column("id_order", Integer, nullable=False, index=True),
        Column("state", SmallInteger, nullable=False, server_default="1"),
        Column("question", Text, nullable=False),
        Column("date_add", ShopDateTime, nullable=False),
        Column("date_upd", ShopDateTime, nullable=False),
    )
    order_return_detail = table(
        "order_return_detail",
        Column("id_order_return", Integer, primary_key=True, autoincrement=False),
        Column("id_order_detail", Integer, primary_key=True, autoincrement=False),
        Column("id_customization", Integer, primary_key=True, autoincrement=False, server_default="0"),
        Column("product_quantity", Integer, nullable=False, server_default="0"),
    )
    customer = table(
        "customer",
        Column("id_customer", Integer, primary_key=True),
        Column("id_shop_group", Integer, nullable=False, server_default="1", index=True),
        Column("id_shop", Integer, nullable=False, server_default="1"),
        Column("id_gender", Integer, nullable=False, index=True),
        Column("id_default_group", Integer, nullable=False, server_default="1"),
        Column("id_lang", Integer),
        Column("id_risk", Integer, nullable=False, server_default="1"),
        Column("company", String(255)),
        Column("siret", String(14)),
        Column("ape", String(5)),
        Column("firstname", String(255), nullable=False),
        Column("lastname", String(255), nullable=False),
        Column("email", String(255), nullable=False, index=True),
        Column("passwd", String(255), nullable=False),
        Column("last_passwd_gen", ShopDateTime, nullable=False, server_default=text("CURRENT_TIMESTAMP")),
        Column("birthday", ShopDate),
        Column("newsletter", SmallInteger, nullable=False, server_default="0"),
        Column("ip_registration_newsletter", String(15)),
        Column("newsletter_date_add", ShopDateTime),
        Column("optin", SmallInteger, nullable=False, server_default="0"),
        Column("website", String(128)),
        Column("outstanding_allow_amount", Money, nullable=False, server_default="0.00"),
        Column("show_public_prices", SmallInteger, nullable=False, server_default="0"),
        Column("max_payment_days", Integer, nullable=False, server_default="60"),
        Column("secure_key", String(32), nullable=False, server_default="-1"),
        Column("note", Text),
        Column("active", SmallInteger, nullable=False, server_default="0"),
        Column("is_guest", SmallInteger, nullable=False, server_default="0"),
        Column("deleted", SmallInteger, nullable=False, server_default="0"),
        Column("date_add", ShopDateTime, nullable=False),
        Column("date_upd", ShopDateTime, nullable=False),
        Column("reset_password_token", String(40)),
        Column("reset_password_validity", ShopDateTime),
    )
    address = table(
        "address",
        Column("id_address", Integer, primary_key=True),
        Column("id_country", Integer, nullable=False, index=True),
        Column("id_state", Integer, index=True),
        Column("id_customer", Integer, nullable=False, server_default="0", index=True),
        Column("id_manufacturer", Integer, nullable=False, server_default="0", index=True),
        Column("id_supplier", Integer, nullable=False, server_default="0", index=True),
        Column("id_warehouse", Integer, nullable=False, server_default="0", index=True),
        Column("alias", String(32), nullable=False),
        Column("company", String(255)),
        Column("lastname", String(255), nullable=False),
        Column("firstname", String(255), nullable=False),
        Column("address1", String(128), nullable=False),
        Column("address2", String(128)),
        Column("postcode", String(12)),
        Column("city", String(64), nullable=False),
        Column("other", Text),
        Column("phone", String(32)),
        Column("phone_mobile", String(32)),
        Column("vat_number", String(32)),
        Column("dni", String(16)),
        Column("date_add", ShopDateTime, nullable=False),
        Column("date_upd", ShopDateTime, nullable=False),
        Column("active", SmallInteger, nullable=False, server_default="1"),
        Column("deleted", SmallInteger, nullable=False, server_default="0"),
    )
    country = table(
        "country",
        Column("id_country", Integer, primary_key=True),
        Column("id_zone", Integer, nullable=False, index=True),
        Column("id_currency", Integer, nullable=False, server_default="0"),
        Column("iso_code", String(3), nullable=False, index=True),
        Column("call_prefix", Integer, nullable=False, server_default="0"),
        Column("active", SmallInteger, nullable=False, server_default="0"),
        Column("contains_states", SmallInteger, nullable=False, server_default="0"),
        Column("need_identification_number", SmallInteger, nullable=False, server_default="0"),
        Column("need_zip_code", SmallInteger, nullable=False, server_default="1"),
        Column("zip_code_format", String(12), nullable=False, server_default=""),
        Column("display_tax_label", SmallInteger, nullable=False),
    )
    country_lang = table(
        "country_lang",
        Column("id_country", Integer, primary_key=True, autoincrement=False),
        Column("id_lang", Integer, primary_key=True, autoincrement=False),
        Column("name", String(64), nullable=False),
    )
    state = table(
        "state",
        Column("id_state", Integer, primary_key=True),
        Column("id_country", Integer, nullable=False, index=True),
        Column("id_zone", Integer, nullable=False, index=True),
        Column("name", String(80), nullable=False, index=True),
        Column("iso_code", String(7), nullable=False),
        Column("tax_behavior", SmallInteger, nullable=False, server_default="0"),
        Column("active", SmallInteger, nullable=False, server_default="0"),
    )
    currency = table(
        "currency",
        Column("id_currency", Integer, primary_key=True),
        Column("name", String(64), nullable=False),
        Column("iso_code", String(3), nullable=False, server_default="0", index=True),
        Column("numeric_iso_code", String(3)),
        Column("precision", Integer, nullable=False, server_default="6"),
        Column("conversion_rate", Numeric(13, 6, asdecimal=True), nullable=False),
        Column("deleted", SmallInteger, nullable=False, server_default="0"),
        Column("active", SmallInteger, nullable=False, server_default="1"),
        Column("unofficial", SmallInteger, nullable=False, server_default="0"),
        Column("modified", SmallInteger, nullable=False, server_default="0"),
    )
    carrier = table(
        "carrier",
        Column("id_carrier", Integer, primary_key=True),
        Column("id_reference", Integer, nullable=False),
        Column("name", String(64), nullable=False),
        Column("url", String(255)),
        Column("active", SmallInteger, nullable=False, server_default="0"),
        Column("deleted", SmallInteger, nullable=False, server_default="0"),
        Column("shipping_handling", SmallInteger, nullable=False, server_default="1"),
        Column("range_behavior", SmallInteger, nullable=False, server_default="0"),
        Column("is_module", SmallInteger, nullable=False, server_default="0"),
        Column("is_free", SmallInteger, nullable=False, server_default="0"),
        Column("shipping_external", SmallInteger, nullable=False, server_default="0"),
        Column("need_range", SmallInteger, nullable=False, server_default="0"),
        Column("external_module_name", String(64)),
        Column("shipping_method", Integer, nullable=False, server_default="0"),
        Column("position", Integer, nullable=False, server_default="0"),
        Column("max_width", Integer, server_default="0"),
        Column("max_height", Integer, server_default="0"),
        Column("max_depth", Integer, server_default="0"),
        Column("max_weight", Numeric(20, 6, asdecimal=True), server_default="0"),
        Column("grade", Integer, server_default="0"),
    )
    carrier_lang = table(
        "carrier_lang",
        Column("id_carrier", Integer, nullable=False),
        Column("id_shop", Integer, nullable=False, server_default="1"),
        Column("id_lang", Integer, nullable=False),
        Column("delay", String(512)),
        PrimaryKeyConstraint("id_lang", "id_shop", "id_carrier"),
    )
    configuration = table(
        "configuration",
        Column("id_configuration", Integer, primary_key=True),
        Column("id_shop_group", Integer, index=True),
        Column("id_shop", Integer, index=True),
        Column("name", String(254), nullable=False, index=True),
        Column("value", Text),
        Column("date_add", ShopDateTime, nullable=False),
        Column("date_upd", ShopDateTime, nullable=False),
    )
    lang = table(
        "lang",
        Column("id_lang", Integer, primary_key=True),
        Column("name", String(32), nullable=False),
        Column("active", SmallInteger, nullable=False),
        Column("iso_code", String(2), nullable=False),
        Column("language_code", String(5), nullable=False),
        Column("locale", String(5), nullable=False),
        Column("date_format_lite", String(32), nullable=False),
        Column("date_format_full", String(32), nullable=False),
        Column("is_rtl", SmallInteger, nullable=False),
    )
    shop = table(
        "shop",
        Column("id_shop", Integer, primary_key=True),
        Column("id_shop_group", Integer, nullable=False, index=True),
        Column("name", String(64), nullable=False),
        Column("color", String(50), nullable=False),
        Column("id_category", Integer, nullable=False),
        Column("theme_name", String(255), nullable=False),
        Column("active", SmallInteger, nullable=False),
        Column("deleted", SmallInteger, nullable=False),
    )
    sequra_order = table(
        "sequra_order",
        Column("order_id", Integer, primary_key=True, autoincrement=False),
        Column("sent_to_sequra", SmallInteger, nullable=False),
        Column("merchant_id", String(64), nullable=False),
    )
    return ShopTables(
        metadata=metadata,
        prefix=prefix,
        orders=orders,
        order_detail=order_detail,
        order_history=order_history,
        order_state=order_state,
        order_state_lang=order_state_lang,
        order_carrier=order_carrier,
        order_cart_rule=order_cart_rule,
        order_slip=order_slip,
        order_return=order_return,
        order_return_detail=order_return_detail,
        customer=customer,
        address=address,
        country=country,
        country_lang=country_lang,
        state=state,
        currency=currency,
        carrier=carrier,
        carrier_lang=carrier_lang,
        configuration=configuration,
        lang=lang,
        shop=shop,
        sequra_order=sequra_order,
    )


def create_shop_schema(engine: Engine, tables: ShopTables) -> None:
    """Create the shop's tables where missing (the SQLite demo shop and fast tests; real shops have them)."""
    tables.metadata.create_all(engine)
