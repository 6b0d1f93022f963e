"""The demo: a seeded PrestaShop database, the local SeQura sandbox, and the flow run three times."""

from __future__ import annotations

import os
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from sqlalchemy import create_engine, select

from sandbox.config import SandboxConfig
from sandbox.server import SandboxServer
from schemas.prestashop import create_shop_schema, shop_tables
from seeding.demo_shop import seed_demo_shop
from seeding.writer import ShopWriter

DEMO_DIR = Path(".demo")
SHOP_TIMEZONE = "Europe/Madrid"


def _fresh(path: Path) -> Path:
    """Remove what an earlier demo left at `path`; deletes a file."""
    path.unlink(missing_ok=True)
    return path


def _shop_now() -> datetime:
    """The shop's local time now, naive, as PrestaShop stores it."""
    return datetime.now(ZoneInfo(SHOP_TIMEZONE)).replace(tzinfo=None)


def _say(title: str) -> None:
    """Print a step heading."""
    print(f"\n=== {title} ===", flush=True)


def change_reported_order(shop_url: str, reference: str) -> int:
    """Edit the delivery address of a reported order from its back-office page; writes the demo shop."""
    engine = create_engine(shop_url)
    tables = shop_tables()
    writer = ShopWriter(engine, tables)
    with engine.connect() as conn:
        id_order, id_address = conn.execute(
            select(tables.orders.c.id_order, tables.orders.c.id_address_delivery)
            .where(tables.orders.c.reference == reference)
            .order_by(tables.orders.c.id_order)
        ).first()
    moment = _shop_now()
    new_address = writer.edit_address(id_address, at=moment, address2="Escalera B, 3º 2ª")
    writer.repoint_order_address(id_order, "delivery", new_address, at=moment)
    engine.dispose()
    return id_order


def run_demo() -> int:
    """Seed the demo shop, start the sandbox, run the flow three times and say where to look."""
    from flows.delivery_report import delivery_report

    DEMO_DIR.mkdir(exist_ok=True)
    shop_url = f"sqlite:///{_fresh(DEMO_DIR / 'shop.sqlite').resolve()}"
    state_url = f"sqlite:///{_fresh(DEMO_DIR / 'state.sqlite').resolve()}"
    engine = create_engine(shop_url)
    tables = shop_tables()
    create_shop_schema(engine, tables)
    demo = seed_demo_shop(engine, tables, now=_shop_now())
    engine.dispose()
    config = SandboxConfig()
    with SandboxServer(port=0, config=config) as sandbox:
        os.environ.update(
            {
                "SHOP_DB_URL": shop_url,
                "STATE_DB_URL": state_url,
                "SEQURA_API_URL": sandbox.url,
                "SEQURA_USERNAME": config.username,
                "SEQURA_PASSWORD": config.password,
                "SEQURA_MERCHANT_ID": config.merchants[0],
            }
        )
        _say(f"1. First run: the demo shop's shipped SeQura orders go to the sandbox at {sandbox.url}")
        first = delivery_report()
        accepted = sandbox.state.orders()
        print(
            f"The sandbox accepted {len(accepted)} orders: " + ", ".join(o["order_ref_1"] for o in accepted)
        )
        for entry in first.quarantined:
            print(f"  quarantined {entry.reference}: {entry.reason}")

        _say("2. The same window again: nothing is sent twice")
        second = delivery_report(since=first.window.since, until=first.window.until)
        print(
            f"Sent {second.counts.sent}; unchanged {second.counts.unchanged}; the sandbox still holds "
            f"{len(sandbox.state.orders())} orders"
        )

        changed_ref = first.sent[0].reference
        change_reported_order(shop_url, changed_ref)
        _say(f"3. Order {changed_ref} gets a new delivery address in the back office; the next run sees it")
        third = delivery_report()
        print("Changed after reporting: " + (", ".join(o.order_ref_1 for o in third.changed) or "none"))
    _say("Where to look")
    print(f"Demo shop (SQLite): {shop_url}")
    print(f"State store: {state_url} (tables order_snapshots, runs, quarantine, order_changes)")
    print(f"Orders in the demo shop by kind: {len(demo.shipped_refs)} shipped SeQura orders seeded")
    print(
        "Prefect UI with these runs and their artifacts: "
        f"PREFECT_HOME={os.environ.get('PREFECT_HOME', '~/.prefect')} .venv/bin/prefect server start"
    )
    ok = first.counts.sent > 0 and second.counts.sent == 0 and third.counts.changed >= 1
    print("\nDemo " + ("succeeded" if ok else "FAILED: see the runs above"))
    return 0 if ok else 1
