"""Shop fixes: --apply writes SeQura's corrections into the shop as PrestaShop does, order by order."""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from sqlalchemy import Engine, insert, select, update
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError

from schemas.corrections import (
    ADDRESS_COLUMNS,
    CUSTOMER_COLUMNS,
    INVOICE_ADDRESS_COLUMNS,
    ROLE_OF_RECORD,
    AppliedFix,
    Difference,
    Role,
    SkippedFix,
)
from schemas.errors import TerminalError
from schemas.prestashop import ShopTables
from tasks.reconciliation.compare import OrderFix
from tasks.reconciliation.normalise import plain_text, same
from tasks.reconciliation.shop_rules import PRESTASHOP_RULES, Places, read_places, refusal


class FixSkippedError(TerminalError):
    """One order's corrections cannot be written as they are; the message says why and what to do."""


@dataclass
class FixSession:
    """What this reconciliation already wrote, so that two orders sharing a buyer or an address agree."""

    written: dict[tuple[str, int], datetime] = field(default_factory=dict)  # (table, id): date_upd we set
    copies: dict[tuple[int, frozenset[tuple[str, Any]]], int] = field(default_factory=dict)
    retired: set[int] = field(default_factory=set)  # address rows this run soft-deleted

    def merge(self, later: FixSession) -> None:
        """Keep what one committed order wrote."""
        self.written.update(later.written)
        self.copies.update(later.copies)
        self.retired |= later.retired


def _locked_versions(
    conn: Connection, tables: ShopTables, keys: Sequence[tuple[str, int]]
) -> dict[tuple[str, int], Any]:
    """The current date_upd of the rows an order's fix may write, locked until its transaction ends."""
    ids: dict[str, list[int]] = defaultdict(list)
    for table, row_id in keys:
        ids[table].append(row_id)
    found: dict[tuple[str, int], Any] = {}
    for name, row_ids in ids.items():
        table = getattr(tables, name)
        (key,) = table.primary_key.columns
        query = select(key, table.c.date_upd).where(key.in_(row_ids)).with_for_update()
        found |= {(name, row_id): date_upd for row_id, date_upd in conn.execute(query)}
    return found


def rows_written(fix: OrderFix) -> set[tuple[str, int]]:
    """The customer and address rows an order's fix writes or copies."""
    rows = {("address", d.row) for d in fix.differences if _on_address(d)}
    rows |= {("address", repoint.old) for repoint in fix.repoints}
    if any(not _on_address(d) for d in fix.differences):
        rows.add(("customer", fix.id_customer))
    return rows


def check_unchanged(conn: Connection, tables: ShopTables, fix: OrderFix, session: FixSession) -> None:
    """Raise FixSkippedError if a row of the order changed in the shop after the reconciliation read it.

    A row the fix must write that was not in the shop when it was read (a deleted buyer or address) skips
    the order too: there is nothing to correct the way PrestaShop does.
    """
    for table, row_id in sorted(rows_written(fix) - set(fix.versions)):
        raise FixSkippedError(
            f"{table} {row_id} is not in the shop's {table} table; restore it or point the order to "
            "another one in the back office, then reconcile again"
        )
    current = _locked_versions(conn, tables, list(fix.versions))
    for key, read in fix.versions.items():
        now_at = current.get(key)
        if key not in current:
            raise FixSkippedError(f"{key[0]} {key[1]} is no longer in the shop; reconcile again")
        if now_at != read and session.written.get(key) != now_at:
            raise FixSkippedError(
                f"{'order' if key[0] == 'orders' else key[0]} {key[1]} changed in the shop at {now_at} "
                "after the corrections were read; reconcile again to see it as it is now"
            )


def _on_address(difference: Difference) -> bool:
    """Whether a difference is corrected on an address row (else on the customer row)."""
    return difference.record != "customer" or difference.field in INVOICE_ADDRESS_COLUMNS


def _customer_fix(
    conn: Connection, tables: ShopTables, fix: OrderFix, moment: datetime, session: FixSession
) -> list[AppliedFix]:
    """Change the buyer's email, names or company in place; refuse an email another account uses."""
    wanted = [d for d in fix.differences if not _on_address(d)]
    if not wanted:
        return []
    c = tables.customer
    row = conn.execute(select(c).where(c.c.id_customer == fix.id_customer)).mappings().one()
    changes = {
        d: CUSTOMER_COLUMNS[d.field]
        for d in wanted
        if not same(d.field, row[CUSTOMER_COLUMNS[d.field]], d.sequra_value)
    }
    if not changes:
        return []
    values = {column: d.sequra_value.strip() for d, column in changes.items()}
    for column, value in values.items():
        rule = PRESTASHOP_RULES.get(column)
        if rule is not None and rule[0].search(value):
            raise FixSkippedError(
                f"customer.{column} {value!r} is not {rule[1]} as PrestaShop accepts it; correct it by hand"
            )
    email = values.get("email")
    if email is not None and not row["is_guest"]:
        taken = conn.execute(
            select(c.c.id_customer).where(
                c.c.email == email, c.c.id_customer != fix.id_customer, c.c.is_guest == 0, c.c.deleted == 0
            )
        ).first()
        if taken is not None:
            raise FixSkippedError(
                f"customer {fix.id_customer} cannot take the email {email}: customer {taken[0]}, a "
                "registered account, already uses it; merge the two accounts in the back office, then "
                "reconcile again"
            )
    conn.execute(update(c).where(c.c.id_customer == fix.id_customer).values(**values, date_upd=moment))
    session.written[("customer", fix.id_customer)] = moment
    return [
        AppliedFix(
            fix.order_reference,
            d.id_order,
            d.record,
            d.field,
            "customer",
            fix.id_customer,
            fix.id_customer,
            row[column],
            values[column],
        )
        for d, column in changes.items()
    ]


def _address_target(difference: Difference) -> tuple[Role, str]:
    """Which role's address a difference corrects, and the ps_address column."""
    if difference.record == "customer":
        return "invoice", INVOICE_ADDRESS_COLUMNS[difference.field]
    return ROLE_OF_RECORD[difference.record], ADDRESS_COLUMNS[difference.field]


def _column_value(difference: Difference, places: Places, id_country: int) -> tuple[str, Any]:
    """The ps_address column and value a difference writes (a country or a state by its id)."""
    _, column = _address_target(difference)
    value = difference.sequra_value.strip()
    if column == "id_country":
        if value.upper() not in places.countries:
            raise FixSkippedError(
                f"{difference.record}.country_code {value!r} is not a country of the shop; add it in "
                "International > Locations > Countries, or correct the order by hand"
            )
        return column, places.countries[value.upper()].id_country
    if column == "id_state":
        state = places.states.get((id_country, plain_text(value)))
        if state is None:
            raise FixSkippedError(
                f"{difference.record}.state {value!r} is not a state of the address's country in the shop; "
                "correct the order by hand"
            )
        return column, state
    return column, value


def address_changes(
    differences: Sequence[Difference], old: Mapping[str, Any], places: Places
) -> dict[str, Any]:
    """The ps_address columns and values that correct one address row (a new country first, then states).

    Raises FixSkippedError when SeQura sent two values for one column, or PrestaShop would refuse the result.
    """
    values: dict[str, Any] = {}
    for difference in sorted(differences, key=lambda d: d.field != "country_code"):
        column, value = _column_value(difference, places, values.get("id_country", old["id_country"]))
        if column in values and values[column] != value:
            raise FixSkippedError(
                f"SeQura sent two values for {column} of address {old['id_address']} "
                f"({values[column]!r} and {value!r}); correct it by hand"
            )
        values[column] = value
    if "id_country" in values and "id_state" not in values and old["id_state"]:
        values["id_state"] = 0  # the old state belongs to the old country
    problem = refusal({**old, **values}, list(values), places)
    if problem is not None:
        raise FixSkippedError(f"address {old['id_address']}: {problem}; correct it by hand")
    return values


def _new_address(
    conn: Connection,
    tables: ShopTables,
    old: Mapping[str, Any],
    changes: Mapping[str, Any],
    moment: datetime,
    session: FixSession,
) -> int:
    """Copy an address row with `changes` into a new row and soft-delete the old one; return the new id.

    The copy stays out of the buyer's address book (deleted = 1) when the old row already was, as a
    version the buyer had replaced.
    """
    a = tables.address
    key = (old["id_address"], frozenset(changes.items()))
    if key in session.copies:
        return session.copies[key]
    hidden = bool(old["deleted"]) and old["id_address"] not in session.retired
    row = {name: value for name, value in old.items() if name != "id_address"}
    row |= dict(changes) | {"date_add": moment, "date_upd": moment, "deleted": int(hidden)}
    new_id: int = conn.execute(insert(a).values(**row)).inserted_primary_key[0]
    conn.execute(update(a).where(a.c.id_address == old["id_address"]).values(deleted=1, date_upd=moment))
    session.copies[key] = new_id
    session.retired.add(old["id_address"])
    session.written[("address", old["id_address"])] = moment
    return new_id


def _repoint(
    conn: Connection, tables: ShopTables, role: Role, old: int, new: int, ids: Sequence[int], moment: datetime
) -> None:
    """Point the sub-orders `ids` using address `old` as `role` at address `new`, as the order page does."""
    o = tables.orders
    conn.execute(
        update(o)
        .where(o.c.id_order.in_(ids), o.c[f"id_address_{role}"] == old)
        .values(**{f"id_address_{role}": new}, date_upd=moment)
    )


def _address_fix(
    conn: Connection, tables: ShopTables, fix: OrderFix, moment: datetime, places: Places, session: FixSession
) -> list[AppliedFix]:
    """Version the order's corrected addresses, repoint its sub-orders to the new rows or to fixed copies."""
    wanted = [d for d in fix.differences if _on_address(d)]
    a = tables.address
    rows = {
        row["id_address"]: row
        for row in conn.execute(select(a).where(a.c.id_address.in_({d.row for d in wanted}))).mappings()
    }
    targets: dict[tuple[Role, int], list[Difference]] = defaultdict(list)
    for d in wanted:
        targets[(_address_target(d)[0], d.row)].append(d)
    changes = {
        (role, row): address_changes(found, rows[row], places) for (role, row), found in targets.items()
    }
    applied: list[AppliedFix] = []
    for (role, old_id), values in changes.items():
        new_id = _new_address(conn, tables, rows[old_id], values, moment, session)
        ids = sorted({i for d in targets[(role, old_id)] for i in d.id_orders})
        _repoint(conn, tables, role, old_id, new_id, ids, moment)
        session.written |= {("orders", id_order): moment for id_order in ids}
        applied += [
            AppliedFix(
                fix.order_reference,
                d.id_order,
                d.record,
                d.field,
                "address",
                old_id,
                new_id,
                d.shop_value,
                d.sequra_value.strip(),
            )
            for d in targets[(role, old_id)]
        ]
    for repoint in fix.repoints:
        _repoint(conn, tables, repoint.role, repoint.old, repoint.new, repoint.id_orders, moment)
        session.written |= {("orders", id_order): moment for id_order in repoint.id_orders}
        applied.append(
            AppliedFix(
                fix.order_reference,
                repoint.id_orders[0],
                f"{repoint.role}_address",
                "id_address",
                "address",
                repoint.old,
                repoint.new,
                str(repoint.old),
                str(repoint.new),
            )
        )
    return applied


def apply_fix(
    conn: Connection, tables: ShopTables, fix: OrderFix, moment: datetime, places: Places, session: FixSession
) -> list[AppliedFix]:
    """Write one order's corrections in the open transaction `conn`; writes customer, address and orders.

    Raises FixSkippedError, before writing anything, when a row changed since it was read or a value cannot
    be written.
    """
    check_unchanged(conn, tables, fix, session)
    return _customer_fix(conn, tables, fix, moment, session) + _address_fix(
        conn, tables, fix, moment, places, session
    )


class AuditTrail(Protocol):
    """Where --apply keeps what it changed: pending while the shop's transaction is open, then settled."""

    def pending(self, batch: str, applied: list[AppliedFix]) -> None:
        """Keep what one order's transaction is about to commit."""

    def settle(self, batch: str, *, committed: bool) -> None:
        """Mark a batch applied once the shop committed it, or forget it if the shop did not."""


RETRIED = (1205, 1213)  # MySQL's lock wait timeout and deadlock: the transaction can be tried again


def _shop_error(error: DBAPIError) -> int | None:
    """The MySQL error number of a database error, if it has one."""
    args = getattr(error.orig, "args", None) or (None,)
    return args[0] if isinstance(args[0], int) else None


def _apply_one(
    engine: Engine,
    tables: ShopTables,
    fix: OrderFix,
    moment: datetime,
    places: Places,
    session: FixSession,
    audit: AuditTrail,
) -> list[AppliedFix]:
    """One order's fix in its own transaction, tried again after a deadlock; writes the shop and the audit."""
    for attempt in (1, 2):
        batch = str(uuid.uuid4())
        trial = FixSession(dict(session.written), dict(session.copies), set(session.retired))
        try:
            with engine.begin() as conn:
                done = apply_fix(conn, tables, fix, moment, places, trial)
                audit.pending(batch, done)
        except DBAPIError as error:
            audit.settle(batch, committed=False)
            if attempt == 1 and _shop_error(error) in RETRIED:
                continue
            raise FixSkippedError(
                f"the shop's database refused the change ({error.orig}); nothing was written for this order"
            ) from None
        except FixSkippedError:
            audit.settle(batch, committed=False)
            raise
        audit.settle(batch, committed=True)
        session.merge(trial)
        return done
    raise AssertionError("unreachable")


def apply_fixes(
    engine: Engine,
    tables: ShopTables,
    fixes: Sequence[OrderFix],
    moment: datetime,
    session: FixSession,
    audit: AuditTrail,
) -> tuple[list[AppliedFix], list[SkippedFix]]:
    """Write each order's corrections in a transaction of its own; one that cannot be written is skipped.

    Writes the shop, and the audit trail around each order's transaction. `moment` is the shop-local time
    recorded as date_upd (and date_add of new addresses).
    """
    moment = moment.replace(microsecond=0)  # as the shop keeps it, to know our own writes again
    with engine.connect() as conn:
        places = read_places(conn, tables)
    applied: list[AppliedFix] = []
    skipped: list[SkippedFix] = []
    for fix in fixes:
        try:
            applied += _apply_one(engine, tables, fix, moment, places, session, audit)
        except FixSkippedError as why:
            skipped.append(SkippedFix(fix.order_reference, fix.id_orders[0], str(why)))
    return applied, skipped
