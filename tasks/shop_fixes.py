"""Shop fixes: write SeQura's corrections into the shop the way PrestaShop's back office does.

An address used by an order is never edited in place: the corrected address becomes a new row, the old row
is soft-deleted (`deleted = 1`), and the sub-orders that pointed to it are repointed to the new one, as
"Edit" on the order page does. A buyer's email, names and company are changed in place. Each order is one
transaction, which first checks that nothing it writes changed since the reconciliation read it.
"""

from __future__ import annotations

import re
import uuid
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from sqlalchemy import Engine, Table, false, insert, select, update
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
from schemas.prestashop import ShopTables
from tasks.compare import OrderFix
from tasks.normalise import plain_text, same

ACCESS_DENIED = (1142, 1143)  # MySQL's table and column access denied


class FixSkippedError(Exception):
    """One order's corrections cannot be written as they are; the message says why and what to do."""


class MissingGrantsError(RuntimeError):
    """The shop's database user cannot write what --apply writes; the message gives the GRANT to run."""


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


@dataclass(frozen=True)
class Country:
    """What PrestaShop checks of an address in one country."""

    id_country: int
    iso_code: str
    need_zip_code: bool
    zip_code_format: str
    contains_states: bool
    need_identification_number: bool


@dataclass(frozen=True)
class Places:
    """The shop's countries by ISO code and id, and its states by country and name."""

    countries: Mapping[str, Country]
    states: Mapping[tuple[int, str], int]

    def country(self, id_country: int) -> Country | None:
        """The country of an id, if the shop has it."""
        return next((c for c in self.countries.values() if c.id_country == id_country), None)


def _write_probes(tables: ShopTables) -> list[tuple[str, Table, Any]]:
    """Statements that change nothing but need each privilege --apply uses."""
    a, o, c = tables.address, tables.orders, tables.customer
    columns = [column for column in a.c if column.key != "id_address"]
    copy = insert(a).from_select([column.key for column in columns], select(*columns).where(false()))
    return [
        ("UPDATE", c, update(c).where(false()).values(date_upd=c.c.date_upd)),
        ("UPDATE", o, update(o).where(false()).values(date_upd=o.c.date_upd)),
        ("UPDATE", a, update(a).where(false()).values(date_upd=a.c.date_upd)),
        ("INSERT", a, copy),
    ]


def check_write_grants(engine: Engine, tables: ShopTables) -> None:
    """Raise MissingGrantsError naming each missing privilege and the GRANT that adds it (MySQL, MariaDB).

    Runs statements that match no row, in a transaction rolled back: the database checks the privileges of
    a statement before it looks for rows.
    """
    if engine.dialect.name not in ("mysql", "mariadb"):
        return
    missing: dict[str, list[str]] = defaultdict(list)
    with engine.connect() as conn:
        for privilege, table, statement in _write_probes(tables):
            try:
                with conn.begin_nested():
                    conn.execute(statement)
            except DBAPIError as error:
                code = error.orig.args[0] if error.orig is not None and error.orig.args else None
                if code not in ACCESS_DENIED:
                    raise
                missing[table.name].append(privilege)
        user = conn.exec_driver_sql("SELECT CURRENT_USER()").scalar() or "the shop user"
        database = conn.exec_driver_sql("SELECT DATABASE()").scalar()
        conn.rollback()
    if missing:
        name, host = [*user.split("@", 1), "%"][:2]
        grants = "; ".join(
            f"GRANT {', '.join(sorted(privileges))} ON `{database}`.`{table}` TO '{name}'@'{host}'"
            for table, privileges in missing.items()
        )
        raise MissingGrantsError(
            f"--apply writes the shop, and the shop user {user} lacks "
            + ", ".join(f"{' and '.join(sorted(p))} on {t}" for t, p in missing.items())
            + f"; ask the database administrator to run: {grants}. Without --apply, reading needs only SELECT"
        )


def read_places(conn: Connection, tables: ShopTables) -> Places:
    """The shop's countries and states (two small queries)."""
    c = tables.country
    countries = {
        str(row.iso_code).strip().upper(): Country(
            row.id_country,
            str(row.iso_code).strip().upper(),
            bool(row.need_zip_code),
            row.zip_code_format or "",
            bool(row.contains_states),
            bool(row.need_identification_number),
        )
        for row in conn.execute(
            select(
                c.c.id_country,
                c.c.iso_code,
                c.c.need_zip_code,
                c.c.zip_code_format,
                c.c.contains_states,
                c.c.need_identification_number,
            )
        )
    }
    s = tables.state
    states = {
        (id_country, plain_text(name)): id_state
        for id_state, id_country, name in conn.execute(select(s.c.id_state, s.c.id_country, s.c.name))
    }
    return Places(countries, states)


_NAME = (re.compile(r"[0-9!<>,;?=+()/\\@#\"°*`{}_^$%:¤\[\]|]|[.。](?=\S)"), "a name (no digits)")  # isName
_ADDRESS = (re.compile(r"[!<>?=+@{}_$%]"), "an address")  # isAddress
_PHONE = (re.compile(r"[^+0-9. ()/-]"), "a phone number")  # isPhoneNumber
_GENERIC = re.compile(r"[<>={}]")  # isGenericName
PRESTASHOP_RULES = {  # ps_address and ps_customer columns: the characters PrestaShop's Validate refuses
    "firstname": _NAME,
    "lastname": _NAME,
    "address1": _ADDRESS,
    "address2": _ADDRESS,
    "city": (re.compile(r"[!<>;?=+@#\"°{}_$%]"), "a city name"),
    "postcode": (re.compile(r"[^a-zA-Z 0-9-]"), "a postcode (letters, digits, spaces and -)"),
    "phone": _PHONE,
    "phone_mobile": _PHONE,
    "dni": (re.compile(r"[^0-9A-Za-z.-]"), "an identification number"),
    "company": (_GENERIC, "a company name"),
    "vat_number": (_GENERIC, "a VAT number"),
    "other": (re.compile(r"[<>{}]"), "a message"),
}


def zip_code_pattern(country: Country) -> re.Pattern[str] | None:
    """The postcodes a country takes, from its zip_code_format (N digit, L letter, C its ISO code)."""
    if not country.zip_code_format:
        return None
    pattern = "".join(
        {"N": "[0-9]", "L": "[a-zA-Z]", "C": re.escape(country.iso_code)}.get(ch, re.escape(ch))
        for ch in country.zip_code_format
    )
    return re.compile(f"^{pattern}$", re.IGNORECASE)


def refusal(row: Mapping[str, Any], changed: Sequence[str], places: Places) -> str | None:
    """Why PrestaShop would refuse the address `row` with its `changed` columns, in words; else None."""
    for column in changed:
        value = row[column]
        rule = PRESTASHOP_RULES.get(column)
        if rule is not None and isinstance(value, str) and rule[0].search(value):
            return f"{column} {value!r} is not {rule[1]} as PrestaShop accepts it"
    country = places.country(row["id_country"])
    if country is None:
        return None
    postcode = (row["postcode"] or "").strip()
    if {"postcode", "id_country"} & set(changed):
        pattern = zip_code_pattern(country)
        if country.need_zip_code and not postcode:
            return f"{country.iso_code} addresses need a postcode"
        if postcode and pattern is not None and not pattern.match(postcode):
            return f"postcode {postcode!r} is not of {country.iso_code}'s format {country.zip_code_format}"
    if "id_country" in changed and country.contains_states and not row["id_state"]:
        return f"{country.iso_code} addresses need a state, and SeQura sent none"
    if {"dni", "id_country"} & set(changed) and country.need_identification_number and not row["dni"]:
        return f"{country.iso_code} addresses need an identification number (dni)"
    return None


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


def _quoted_changes(differences: Sequence[Difference]) -> str:
    """Differences as `field 'shop value' -> 'SeQura value'`."""
    return ", ".join(f"{d.field} {d.shop_value!r} -> {d.sequra_value.strip()!r}" for d in differences)


def _orders(ids: Sequence[int]) -> str:
    """'order 12' or 'orders 12, 13'."""
    return f"order{'s' if len(ids) > 1 else ''} {', '.join(str(i) for i in sorted(ids))}"


def planned_changes(fix: OrderFix) -> list[str]:
    """What `--apply` would write for one order, one line per shop row, values quoted as they would be."""
    lines: list[str] = []
    customer = [d for d in fix.differences if not _on_address(d)]
    if customer:
        lines.append(
            f"{fix.order_reference}: customer {fix.id_customer}, in place: {_quoted_changes(customer)}"
        )
    targets: dict[tuple[Role, int], list[Difference]] = defaultdict(list)
    for d in fix.differences:
        if _on_address(d):
            targets[(_address_target(d)[0], d.row)].append(d)
    for (role, row), found in targets.items():
        ids = sorted({i for d in found for i in d.id_orders})
        lines.append(
            f"{fix.order_reference}: {role} address {row} copied to a new address with "
            f"{_quoted_changes(found)}; address {row} soft-deleted; {_orders(ids)} repointed to it"
        )
    lines += [
        f"{fix.order_reference}: {_orders(r.id_orders)} repointed from {r.role} address {r.old} to address "
        f"{r.new}, which already holds SeQura's correction"
        for r in fix.repoints
    ]
    return lines


def applied_changes(applied: Sequence[AppliedFix]) -> list[str]:
    """What --apply changed, one line per shop row, with the ids of the rows it created."""
    rows: dict[tuple[str, str, int, int], list[AppliedFix]] = defaultdict(list)
    for fix in applied:
        rows[(fix.order_reference, fix.shop_table, fix.row_before, fix.row_after)].append(fix)
    lines = []
    for (order_ref, table, before, after), fixes in rows.items():
        if fixes[0].field == "id_address":
            lines.append(f"{order_ref}: order {fixes[0].id_order} repointed from address {before} to {after}")
            continue
        values = ", ".join(f"{f.field} {f.before!r} -> {f.after!r}" for f in fixes)
        lines.append(
            f"{order_ref}: customer {before}, in place: {values}"
            if table == "customer"
            else f"{order_ref}: address {before} copied to new address {after} with {values}; "
            f"address {before} soft-deleted"
        )
    return lines
