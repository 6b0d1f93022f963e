"""The floor: every row and column the pipeline needs, fetched set-based with one driver and thrown away.

One streaming query per table the pipeline reads (the SeQura orders with their buyer and carrier, their
shipped history rows, lines, discounts, addresses and tracking numbers), the columns the extract selects,
no pandas, no building: what no pipeline on that driver can beat. Drivers: pymysql and mysqlclient (DB-API,
a streaming cursor), and connectorx (Rust, Arrow record batches streamed; a URL with the driver name
`connectorx`). Run as `python -m benchmarks.floor DATABASE_URL` to print {"seconds", "rows", "peak_mb"} as
JSON.
"""

from __future__ import annotations

import json
import resource
import sys
import time
from collections.abc import Iterator

from sqlalchemy.engine import URL, make_url

SEQURA = "o.module = 'sequrapayment' AND o.reference IS NOT NULL"


def floor_queries(prefix: str, shipped_states: str) -> Iterator[str]:
    """The set-based queries of the floor, for tables named with `prefix`."""
    p = prefix
    yield f"""SELECT o.id_order, o.reference, o.id_shop, o.current_state, o.id_currency, cur.iso_code,
        o.id_lang, l.iso_code, o.id_customer, c.id_customer IS NOT NULL, c.firstname, c.lastname, c.email,
        c.company, c.is_guest, o.id_carrier, car.name, cl.delay, o.id_address_delivery, o.id_address_invoice,
        o.gift, o.total_paid_tax_incl, o.total_shipping_tax_incl, o.total_wrapping_tax_incl,
        m.sent_to_sequra, m.merchant_id
        FROM {p}orders o LEFT JOIN {p}currency cur ON cur.id_currency = o.id_currency
        LEFT JOIN {p}lang l ON l.id_lang = o.id_lang LEFT JOIN {p}customer c ON c.id_customer = o.id_customer
        LEFT JOIN {p}carrier car ON car.id_carrier = o.id_carrier
        LEFT JOIN {p}carrier_lang cl ON cl.id_carrier = o.id_carrier AND cl.id_lang = o.id_lang
            AND cl.id_shop = o.id_shop
        LEFT JOIN {p}sequra_order m ON m.order_id = o.id_order WHERE {SEQURA}"""
    yield f"""SELECT oh.id_order, oh.date_add FROM {p}order_history oh
        JOIN {p}orders o ON o.id_order = oh.id_order
        WHERE oh.id_order_state IN ({shipped_states}) AND {SEQURA}"""
    yield f"""SELECT d.id_order, d.id_order_detail, d.product_id, d.product_reference, d.product_name,
        d.product_quantity, d.product_quantity_refunded, d.product_quantity_return, d.unit_price_tax_incl,
        d.total_price_tax_incl FROM {p}order_detail d JOIN {p}orders o ON o.id_order = d.id_order
        WHERE {SEQURA}"""
    yield f"""SELECT r.id_order, r.id_order_cart_rule, r.name, r.value FROM {p}order_cart_rule r
        JOIN {p}orders o ON o.id_order = r.id_order WHERE r.deleted = 0 AND {SEQURA}"""
    yield f"""SELECT a.id_address, a.firstname, a.lastname, a.company, a.address1, a.address2, a.postcode,
        a.city, a.phone, a.phone_mobile, a.vat_number, a.dni, a.other, a.id_country, co.iso_code, st.name
        FROM {p}address a LEFT JOIN {p}country co ON co.id_country = a.id_country
        LEFT JOIN {p}state st ON st.id_state = a.id_state
        WHERE a.id_address IN (SELECT o.id_address_delivery FROM {p}orders o WHERE {SEQURA}
            UNION SELECT o.id_address_invoice FROM {p}orders o WHERE {SEQURA})"""
    yield f"""SELECT oc.id_order, oc.id_order_carrier, oc.tracking_number, car.name, car.url
        FROM {p}order_carrier oc JOIN {p}orders o ON o.id_order = oc.id_order
        LEFT JOIN {p}carrier car ON car.id_carrier = oc.id_carrier
        WHERE oc.tracking_number IS NOT NULL AND oc.tracking_number <> '' AND {SEQURA}"""


def connect(url: URL) -> object:
    """A DB-API connection with the URL's driver (pymysql or mysqlclient), streaming results."""
    options = {
        "host": url.host or "127.0.0.1",
        "port": url.port or 3306,
        "user": url.username or "root",
        "password": url.password or "",
        "database": url.database,
        "charset": "utf8mb4",
    }
    if url.get_driver_name() == "mysqldb":
        import MySQLdb
        import MySQLdb.cursors

        options["passwd"] = options.pop("password")
        options["db"] = options.pop("database")
        return MySQLdb.connect(cursorclass=MySQLdb.cursors.SSCursor, **options)
    import pymysql
    import pymysql.cursors

    return pymysql.connect(cursorclass=pymysql.cursors.SSCursor, **options)


def connectorx_url(url: URL) -> str:
    """The URL connectorx takes for the shop's database: mysql://user:password@host:port/database."""
    return (
        url.set(drivername="mysql", query={})
        .render_as_string(hide_password=False)
        .replace(f"{url.username}@", f"{url.username}:{url.password or ''}@", 1)
    )


def measure_floor_connectorx(url: URL, prefix: str) -> dict[str, float]:
    """The floor with connectorx: each query's rows streamed as Arrow record batches and counted."""
    import connectorx

    source = connectorx_url(url)
    states = connectorx.read_sql(
        source, f"SELECT id_order_state FROM {prefix}order_state WHERE shipped = 1", return_type="arrow"
    )
    shipped_states = ",".join(str(state) for state in states.column(0).to_pylist()) or "0"
    rows = 0
    started = time.perf_counter()
    for query in floor_queries(prefix, shipped_states):
        batches = connectorx.read_sql(source, query, return_type="arrow_stream", batch_size=10_000)
        for batch in batches:
            rows += batch.num_rows
    return {
        "seconds": time.perf_counter() - started,
        "rows": rows,
        "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def measure_floor(url: URL, prefix: str = "ps_") -> dict[str, float]:
    """Fetch every row the pipeline needs, streaming, and return the seconds and rows it took."""
    if url.get_driver_name() == "connectorx":
        return measure_floor_connectorx(url, prefix)
    connection = connect(url)
    cursor = connection.cursor()  # type: ignore[attr-defined]
    cursor.execute(f"SELECT id_order_state FROM {prefix}order_state WHERE shipped = 1")
    shipped_states = ",".join(str(row[0]) for row in cursor.fetchall()) or "0"
    cursor.close()
    rows = 0
    started = time.perf_counter()
    for query in floor_queries(prefix, shipped_states):
        cursor = connection.cursor()  # type: ignore[attr-defined]
        cursor.execute(query)
        while batch := cursor.fetchmany(10_000):
            rows += len(batch)
        cursor.close()
    seconds = time.perf_counter() - started
    connection.close()  # type: ignore[attr-defined]
    return {
        "seconds": seconds,
        "rows": rows,
        "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


if __name__ == "__main__":
    print(json.dumps(measure_floor(make_url(sys.argv[1]), *sys.argv[2:])))
