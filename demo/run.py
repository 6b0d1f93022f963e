"""The demo: a seeded PrestaShop database, the local SeQura sandbox, and the flows run end to end.

The first delivery report also tells SeQura of an order cancelled before it shipped. The third follows
changes made after shipment, which go to SeQura as order updates. Then SeQura corrects buyer data: a
reconciliation lists what differs in the shop, fixes it, and the next delivery report sends the fixed orders
to SeQura as order updates. Then the next day nothing ships, and the day's statistics go alone. Last, weeks
later, SeQura has paid, and the payout check finds the orders it did not pay as it was told.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import orjson
import requests
from sqlalchemy import create_engine, select
from sqlalchemy.engine import Connection

from sandbox.config import SandboxConfig
from sandbox.server import SandboxServer
from schemas.prestashop import create_shop_schema, shop_tables
from seeding.demo_shop import DemoShop, seed_demo_shop
from seeding.vocabulary import SHIPPED
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


def _cents(cart: object) -> str:
    """A held cart's total as an amount, e.g. 12.50."""
    total = cart.get("order_total_with_tax", 0) if isinstance(cart, dict) else 0
    return f"{total // 100}.{total % 100:02d}"


def _say(title: str) -> None:
    """Print a step heading."""
    print(f"\n=== {title} ===", flush=True)


def _order_ids(conn: Connection, reference: str) -> list[int]:
    """The id_order of every order of a reference, lowest first."""
    orders = shop_tables().orders
    query = select(orders.c.id_order).where(orders.c.reference == reference).order_by(orders.c.id_order)
    return list(conn.execute(query).scalars())


def change_after_shipment(shop_url: str, demo: DemoShop, corrected_ref: str) -> list[str]:
    """Make three changes a merchant makes after shipping, from the back office; writes the demo shop.

    The rest of a split order ships, a partially refunded order gets one more unit refunded, and a delivery
    address is corrected from the order page. Returns what was done, one line each.
    """
    engine = create_engine(shop_url)
    tables = shop_tables()
    writer = ShopWriter(engine, tables)
    moment = _shop_now()
    with engine.connect() as conn:
        second_part = _order_ids(conn, demo.split_partial_ref)[-1]
        [refunded] = _order_ids(conn, demo.partial_refund_ref)
        corrected = _order_ids(conn, corrected_ref)[0]
        address = conn.scalar(
            select(tables.orders.c.id_address_delivery).where(tables.orders.c.id_order == corrected)
        )
    writer.set_state(second_part, SHIPPED, at=moment, id_employee=1)
    writer.refund(refunded, product_reference=demo.refunded_product, quantity=1, at=moment)
    new_address = writer.edit_address(address, at=moment, address2="Escalera B, 3º 2ª")
    writer.repoint_order_address(corrected, "delivery", new_address, at=moment)
    engine.dispose()
    return [
        f"{demo.split_partial_ref}: its second part (order {second_part}) ships",
        f"{demo.partial_refund_ref}: one more unit of {demo.refunded_product} is refunded (credit slip)",
        f"{corrected_ref}: the delivery address is corrected from the order page",
    ]


def demo_corrections(held: Mapping[str, Mapping[str, object]], demo: DemoShop) -> list[object]:
    """What SeQura corrected after talking to the demo's buyers, from the orders it holds.

    A guest's email (with their name in capitals and their phone written another way, which are no
    differences), the postcode of a split order's delivery address, an address the merchant already fixed in
    a new row, a reference the shop does not know, and a malformed record.
    """
    guest = held[demo.guest_ref]
    split = held[demo.split_staggered_ref]
    guest_customer = dict(guest["customer"])  # type: ignore[call-overload]
    guest_address = dict(guest["delivery_address"])  # type: ignore[call-overload]
    split_address = dict(split["delivery_address"])  # type: ignore[call-overload]
    postcode = str(split_address["postal_code"])
    return [
        {
            "order_ref_1": demo.guest_ref,
            "customer": {
                "given_names": str(guest_customer["given_names"]).upper(),
                "email": str(guest_customer["email"]).replace("@", ".puig@"),
            },
            "delivery_address": {"mobile_phone": "0034" + str(guest_address["mobile_phone"])[3:]},
        },
        {
            "order_ref_1": demo.split_staggered_ref,
            "delivery_address": {"postal_code": postcode[:-1] + str((int(postcode[-1]) + 1) % 10)},
        },
        {"order_ref_1": demo.edited_address_ref, "delivery_address": {"address_line_1": "9 Place Bellecour"}},
        {"order_ref_1": "NOTINSHOP", "customer": {"email": "someone@example.com"}},
        {"order_ref_1": demo.gift_ref, "delivery_address": {"postal_code": 75002}},
    ]


def reconcile_demo(sandbox_url: str, held: Mapping[str, Mapping[str, object]], demo: DemoShop) -> bool:
    """Steps 4 to 7: SeQura's corrections listed, applied, sent as order updates, then nothing left."""
    from flows.delivery_report import delivery_report
    from flows.reconcile import reconciliation
    from tasks.inert import plain_text
    from tasks.reconciliation.summary import changes_markdown, reconciliation_markdown

    requests.post(f"{sandbox_url}_sandbox/corrections", json=demo_corrections(held, demo), timeout=10)
    corrections = f"{sandbox_url}_sandbox/corrections"
    _say(f"4. SeQura corrects buyer data ({corrections}): what differs in the shop")
    listing = reconciliation(corrections=corrections, out=str(DEMO_DIR / "differences.csv"))
    print(plain_text(reconciliation_markdown(listing)))
    print("\n" + (DEMO_DIR / "differences.csv").read_text(encoding="utf-8"))
    print(plain_text(changes_markdown(listing)))

    _say("5. The same corrections with --apply: the shop is fixed the way PrestaShop does it")
    fixed = reconciliation(corrections=corrections, apply=True, out=str(DEMO_DIR / "fixed.csv"))
    print(plain_text(changes_markdown(fixed)))
    print(
        f"Orders fixed: {fixed.outcome.counts.fixed_orders}; skipped: {fixed.outcome.counts.skipped_orders}"
    )

    _say("6. The next delivery report sends the fixed orders to SeQura as order updates")
    after = delivery_report()
    for update in after.outcome.update_rows:
        print(f"  {update.order_ref_1}: {update.changes} -> {update.result}")

    _say("7. A second reconciliation finds nothing left to fix")
    again = reconciliation(corrections=corrections, out=str(DEMO_DIR / "again.csv"))
    print(
        f"Differences: {again.outcome.counts.differences}; changes made: the state store's shop_corrections"
    )
    return (
        listing.outcome.counts.differences > 0
        and fixed.outcome.counts.skipped_orders == 0
        and fixed.outcome.counts.fixed_orders >= listing.outcome.counts.orders_with_differences
        and after.counts.updated >= fixed.outcome.counts.fixed_orders
        and again.outcome.counts.differences == 0
    )


def quiet_day(sandbox: SandboxServer) -> bool:
    """Step 8: the next day nothing ships, and the day's statistics go alone; moves the runs' clock a day."""
    from flows.delivery_report import delivery_report
    from tasks import clock

    _say("8. The next day nothing ships: the day's statistics go alone, in a report with no orders")
    clock.RUN_CLOCK = clock.MovedClock(ahead=timedelta(days=1))  # the demo cannot wait for tomorrow
    quiet = delivery_report(until=clock.RUN_CLOCK.now())
    alone = [
        report["body"]["delivery_report"]
        for report in sandbox.state.reports()
        if not report["body"]["delivery_report"]["orders"]
    ]
    print(f"Sent {quiet.counts.sent}; statistics: {quiet.statistics}")
    for report in alone:
        placed = len(report["statistics"]["orders"])
        print(f"  the sandbox got a report with no orders and the statistics of {placed} orders")
    return quiet.counts.sent == 0 and len(alone) == 1


def module_reports_at_sequra(
    sandbox: SandboxServer, state_url: str, merchant: str, refs: Sequence[str]
) -> None:
    """Let the sandbox hold what the PHP module reported before the switch, as it kept it in the state store.

    The module reported these orders to SeQura before this project ran; the demo's sandbox was not there then.
    """
    from tasks.state.snapshots import snapshot_payloads
    from tasks.state.store import open_state_store

    store = open_state_store(state_url)
    try:
        reports = [orjson.loads(payload) for payload in snapshot_payloads(store, merchant, refs).values()]
    finally:
        store.dispose()
    body = {"delivery_report": {"merchant": {"id": merchant}, "orders": reports}}
    sandbox.state.record_report(merchant, body, reports)
    for report in reports:
        print(
            f"  {report['merchant_reference']['order_ref_1']}: reported by the PHP module before the switch, "
            "kept as its baseline and not sent again (the sandbox holds it as the module sent it)"
        )


def payouts_demo(sandbox_url: str, left_out: str, paid_less: str) -> bool:
    """Step 9: seven weeks on, SeQura has paid; the payout check finds the three differences planted."""
    from flows.payouts import payouts
    from schemas.payouts import Finding
    from tasks.inert import plain_text
    from tasks.payouts.summary import payouts_markdown

    paid_on = datetime.now() + timedelta(weeks=7)
    unknown = "SEQURAONLY"
    faults = {
        "now": paid_on.isoformat(timespec="seconds"),
        "leave_out": [left_out],
        "pay_less": {paid_less: 250},
        "pay_unknown": [{"order_ref_1": unknown, "amount_with_tax": 4990}],
    }
    requests.post(f"{sandbox_url}_sandbox/payouts", json=faults, timeout=10).raise_for_status()
    _say(
        f"9. Seven weeks on, SeQura has paid ({sandbox_url}merchants/…/disbursements): did it pay what it "
        f"was told shipped? The sandbox left {left_out} out, paid {paid_less} 2.50 less, and paid {unknown}, "
        "which the shop never reported"
    )
    out = DEMO_DIR / "payouts.csv"
    summary = payouts(out=str(out))
    print(plain_text(payouts_markdown(summary)))
    print("\n" + out.read_text(encoding="utf-8"))
    found = {(finding.order_ref_1, finding.finding) for finding in summary.findings}
    return found == {
        (left_out, Finding.NOT_PAID),
        (paid_less, Finding.PAID_DIFFERS),
        (unknown, Finding.PAID_NOT_REPORTED),
    }


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
        sandbox.state.check_out(config.merchants[0], [demo.cancelled_ref])
        _say(f"1. First run: the demo shop's shipped SeQura orders go to the sandbox at {sandbox.url}")
        first = delivery_report()
        accepted = sandbox.state.orders()
        print(
            f"The sandbox accepted {len(accepted)} orders: " + ", ".join(o["order_ref_1"] for o in accepted)
        )
        for entry in first.outcome.quarantined_rows:
            print(f"  quarantined {entry.reference}: {entry.reason}")
        for update in first.outcome.update_rows:
            print(f"  {update.order_ref_1}: {update.changes} -> {update.result}")
        module_reports_at_sequra(sandbox, state_url, config.merchants[0], demo.module_sent_refs)
        cancelled = sandbox.state.held_order(None, demo.cancelled_ref) or {}
        print(f"  the sandbox now holds {demo.cancelled_ref} as {cancelled.get('state')}")
        print(f"Statistics: {first.statistics}")

        _say("2. The same window again: nothing is sent twice")
        second = delivery_report(since=first.window.since, until=first.window.until)
        print(
            f"Sent {second.counts.sent}; already reported {second.counts.already_reported}; the sandbox "
            f"still holds {len(sandbox.state.orders())} orders"
        )

        corrected_ref = next(
            order.reference
            for order in first.outcome.sent_rows
            if order.reference not in (demo.split_partial_ref, demo.partial_refund_ref)
        )
        _say("3. After shipment, the merchant changes three reported orders in the back office")
        for change in change_after_shipment(shop_url, demo, corrected_ref):
            print("  " + change)
        third = delivery_report()
        print(f"Order updates sent: {third.counts.updated}")
        for update in third.outcome.update_rows:
            print(f"  {update.order_ref_1}: {update.changes} -> {update.result}")
        for update in third.outcome.update_rows:
            held = sandbox.state.held_order(None, update.order_ref_1) or {}
            shipped, unshipped = held.get("shipped_cart", {}), held.get("unshipped_cart", {})
            print(
                f"  the sandbox now holds for {update.order_ref_1}: shipped "
                f"{_cents(shipped)} {shipped.get('currency')}, unshipped {_cents(unshipped)}"
            )
        held = {ref: sandbox.state.held_order(None, ref) or {} for ref in demo.shipped_refs}
        reconciled = reconcile_demo(sandbox.url, held, demo)
        quiet = quiet_day(sandbox)
        untouched = sorted(
            order.order_ref_1
            for order in first.outcome.sent_rows
            if order.reference not in (demo.split_partial_ref, demo.partial_refund_ref, corrected_ref)
        )
        paid = payouts_demo(sandbox.url, untouched[0], untouched[1])
    _say("Where to look")
    print(f"Demo shop (SQLite): {shop_url}")
    print(
        f"State store: {state_url} (tables order_snapshots, runs, quarantine, order_changes, disbursements, "
        "disbursement_lines)"
    )
    print(f"Orders in the demo shop by kind: {len(demo.shipped_refs)} shipped SeQura orders seeded")
    print(
        "Prefect UI with these runs and their artifacts: "
        f"PREFECT_HOME={os.environ.get('PREFECT_HOME', '~/.prefect')} .venv/bin/prefect server start"
    )
    ok = (
        first.counts.sent > 0
        and first.counts.cancelled == 1
        and second.counts.sent == 0
        and third.counts.updated >= 3
        and reconciled
        and quiet
        and paid
    )
    print("\nDemo " + ("succeeded" if ok else "FAILED: see the runs above"))
    return 0 if ok else 1
