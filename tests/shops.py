"""Test shops: a seeded PrestaShop database, and helpers to add orders and read them through the stages."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

from sqlalchemy import Engine, create_engine, update

from schemas.frames import ShopExtract
from schemas.prestashop import ShopTables, create_shop_schema, shop_tables
from schemas.reports import BuildResult, BuiltReport
from seeding.vocabulary import Line
from seeding.writer import ShopWriter
from tasks.delivery.build import build_reports
from tasks.delivery.order_rows import OrderRefField
from tasks.extract.candidates import CandidateSearch, found_candidates, in_scope_now
from tasks.extract.configuration import read_config, shop_local_bounds
from tasks.extract.scope import OrderFilter
from tasks.extract.shipped_orders import extract_chunk
from tasks.rows import in_chunks

MERCHANT = "demo_merchant"
SINCE = datetime(2026, 11, 20, tzinfo=UTC)
UNTIL = datetime(2026, 11, 21, tzinfo=UTC)
MORNING = datetime(2026, 11, 20, 10, 0)  # shop-local (Europe/Madrid): 09:00 UTC, inside the window
PLACED = datetime(2026, 11, 18, 18, 30)
SHIPPED, DELIVERED, PREPARATION, CANCELED = 4, 5, 3, 6


@dataclass
class Shop:
    """A seeded shop: its tables, a writer, and one customer, address and carrier to build orders with."""

    engine: Engine
    tables: ShopTables = field(repr=False)
    writer: ShopWriter = field(repr=False)
    customer: int = 0
    address: int = 0
    carrier: int = 0

    def order(self, reference: str, lines: list[Line] | None = None, **fields: object) -> int:
        """Add an order for the default buyer (one 12.50 product unless `lines` says otherwise)."""
        values: dict[str, object] = {
            "reference": reference,
            "id_customer": self.customer,
            "id_address_delivery": self.address,
            "id_carrier": self.carrier,
            "lines": lines or [Line("Camiseta", "TSHIRT-1", 1, Decimal("12.50"))],
            "placed_at": PLACED,
            "shipping": Decimal("4.95"),
        }
        values.update(fields)
        return self.writer.add_order(**values)

    def new_address(self, **changes: object) -> int:
        """Add another address of the default buyer: Ana García's in Madrid unless `changes` say otherwise."""
        return new_address(self.writer, self.customer, **changes)

    def shipped_order(self, reference: str, at: datetime = MORNING, **fields: object) -> int:
        """Add an order and ship it at `at` (shop-local)."""
        id_order = self.order(reference, **fields)
        self.writer.set_state(id_order, SHIPPED, at=at)
        return id_order

    def set_order(self, id_order: int, **values: object) -> None:
        """Overwrite columns of one order row, as a broken module or a manual fix would."""
        with self.engine.begin() as conn:
            conn.execute(
                update(self.tables.orders).where(self.tables.orders.c.id_order == id_order).values(**values)
            )

    def references(
        self,
        since: datetime = SINCE,
        until: datetime = UNTIL,
        modules: tuple[str, ...] = ("sequrapayment",),
        marks: dict[str, int] | None = None,
    ) -> list[str]:
        """The candidate references of the window (above `marks` when given), as a run finds them."""
        return candidates(self.engine, self.tables, OrderFilter(modules), since, until, marks)

    def extract(
        self,
        since: datetime = SINCE,
        until: datetime = UNTIL,
        modules: tuple[str, ...] = ("sequrapayment",),
        retry: tuple[str, ...] = (),
    ) -> ShopExtract:
        """Run the extract stage over the window's references, as one chunk."""
        order_filter = OrderFilter(modules)
        references = sorted({*self.references(since, until, modules), *retry})
        config = read_config(self.engine, self.tables, None)
        return extract_chunk(self.engine, self.tables, order_filter, config, references)

    def build(self, since: datetime = SINCE, until: datetime = UNTIL, **kwargs: object) -> BuildResult:
        """Run extract and build over the window, in chunks of three references (to exercise chunking)."""
        return build_window(self.engine, self.tables, since, until, chunk_size=3, **kwargs)

    def report(self, reference: str, **kwargs: object) -> BuiltReport:
        """The one built report of `reference`."""
        result = self.build(**kwargs)
        found = [built for built in result.reports if built.reference == reference]
        assert found, f"{reference} not built; quarantined: {result.quarantined}"
        return found[0]


def new_address(writer: ShopWriter, customer: int, **changes: object) -> int:
    """Add an address for `customer`: Ana García, Calle Mayor 1, Madrid, unless `changes` say otherwise."""
    fields: dict[str, object] = {
        "firstname": "Ana",
        "lastname": "García",
        "address1": "Calle Mayor 1",
        "city": "Madrid",
        "postcode": "28013",
        "id_country": 6,
        "at": PLACED,
    }
    return writer.add_address(customer, **{**fields, **changes})


def seeded_shop(engine: Engine, tables: ShopTables) -> Shop:
    """Install the defaults, one buyer with an address, and a carrier with a tracking URL."""
    writer = ShopWriter(engine, tables)
    writer.install_defaults(timezone="Europe/Madrid")
    customer = writer.add_customer(firstname="Ana", lastname="García", email="ana@example.com", at=PLACED)
    address = new_address(writer, customer)
    carrier = writer.add_carrier("Correos Express", url="https://s.correosexpress.com/search?n=@")
    return Shop(engine, tables, writer, customer, address, carrier)


def sqlite_shop(path: Path) -> Shop:
    """A seeded shop in a new SQLite file."""
    engine = create_engine(f"sqlite:///{path}")
    tables = shop_tables()
    create_shop_schema(engine, tables)
    return seeded_shop(engine, tables)


def candidates(
    engine: Engine,
    tables: ShopTables,
    order_filter: OrderFilter,
    since: datetime,
    until: datetime,
    marks: dict[str, int] | None = None,
) -> list[str]:
    """The candidate references of a window, as a run's plan finds them."""
    config = read_config(engine, tables, order_filter.shop_id)
    bounds = shop_local_bounds(since, until, config.timezone)
    search = CandidateSearch(tables, order_filter, config.reporting_states, *bounds, marks=marks)
    found = found_candidates(engine, search, 10_000)
    return [reference for part in found for reference in in_scope_now(part)]


def build_window(
    engine: Engine,
    tables: ShopTables,
    since: datetime,
    until: datetime,
    *,
    chunk_size: int,
    order_ref_field: OrderRefField = "reference",
    modules: tuple[str, ...] = ("sequrapayment",),
) -> BuildResult:
    """Extract and build every chunk of a window's references, as a run does, and put the results together."""
    order_filter = OrderFilter(modules)
    config = read_config(engine, tables, None)
    result = BuildResult()
    for chunk in in_chunks(candidates(engine, tables, order_filter, since, until), chunk_size):
        part = build_reports(
            extract_chunk(engine, tables, order_filter, config, chunk), MERCHANT, order_ref_field
        )
        result.reports.extend(part.reports)
        result.quarantined.extend(part.quarantined)
        result.other_merchant.extend(part.other_merchant)
    return result
