"""PrestaShop's rules for what --apply writes: write grants, its validators, countries' formats."""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine, Table, false, insert, select, update
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError

from schemas.errors import TerminalError
from schemas.prestashop import ShopTables
from tasks.reconciliation.normalise import plain_text

ACCESS_DENIED = (1142, 1143)  # MySQL's table and column access denied


class MissingGrantsError(TerminalError):
    """The shop's database user cannot write what --apply writes; the message gives the GRANT to run."""


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
