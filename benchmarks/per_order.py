"""The per-order baseline: one set of queries per order reference, as the PHP module's report builder runs.

The module loads each order as PrestaShop objects: the sub-orders of its reference, their history (has it
shipped?), lines, discounts, carrier row, buyer, both addresses with their country and state, carrier,
currency and language, each its own SELECT. This reads the same, one query at a time, over a sample of
the shop's SeQura references, and leaves out the module's PHP work of building the report. Run as
`python -m benchmarks.per_order DATABASE_URL SAMPLE` to print its seconds, references, queries and peak
memory as JSON.
"""

from __future__ import annotations

import json
import resource
import sys
import time

from sqlalchemy.engine import make_url

from benchmarks.floor import connect


def per_order_queries(cursor: object, prefix: str, reference: str) -> int:
    """Load one order reference object by object, as the module does; returns how many queries it ran."""
    p = prefix
    run = cursor.execute  # type: ignore[attr-defined]
    fetch = cursor.fetchall  # type: ignore[attr-defined]
    run(f"SELECT * FROM {p}orders WHERE reference = %s", (reference,))
    names = [column[0] for column in cursor.description]  # type: ignore[attr-defined]
    sub_orders = [dict(zip(names, row, strict=True)) for row in fetch()]
    queries = 1
    for order in sub_orders:
        id_order, id_customer, id_lang = order["id_order"], order["id_customer"], order["id_lang"]
        id_delivery, id_invoice = order["id_address_delivery"], order["id_address_invoice"]
        id_carrier, id_currency = order["id_carrier"], order["id_currency"]
        for query, argument in (
            (f"SELECT * FROM {p}order_history h JOIN {p}order_state s USING (id_order_state) "
             "WHERE h.id_order = %s ORDER BY h.date_add", id_order),
            (f"SELECT * FROM {p}order_detail WHERE id_order = %s", id_order),
            (f"SELECT * FROM {p}order_cart_rule WHERE id_order = %s AND deleted = 0", id_order),
            (f"SELECT * FROM {p}order_carrier WHERE id_order = %s", id_order),
            (f"SELECT * FROM {p}customer WHERE id_customer = %s", id_customer),
            (f"SELECT * FROM {p}address a LEFT JOIN {p}country c USING (id_country) "
             f"LEFT JOIN {p}state s USING (id_state) WHERE a.id_address = %s", id_delivery),
            (f"SELECT * FROM {p}address a LEFT JOIN {p}country c USING (id_country) "
             f"LEFT JOIN {p}state s USING (id_state) WHERE a.id_address = %s", id_invoice),
            (f"SELECT * FROM {p}carrier c LEFT JOIN {p}carrier_lang l USING (id_carrier) "
             "WHERE c.id_carrier = %s", id_carrier),
            (f"SELECT * FROM {p}currency WHERE id_currency = %s", id_currency),
            (f"SELECT * FROM {p}lang WHERE id_lang = %s", id_lang),
        ):  # fmt: skip
            run(query, (argument,))
            fetch()
            queries += 1
    return queries


def measure_per_order(url: str, sample: int, prefix: str = "ps_") -> dict[str, float]:
    """Load `sample` SeQura references spread over the shop one by one; seconds, references and queries."""
    connection = connect(make_url(url))
    cursor = connection.cursor()  # type: ignore[attr-defined]
    cursor.execute(
        f"SELECT reference FROM {prefix}orders WHERE module = 'sequrapayment' AND id_order % 97 = 0 "
        f"ORDER BY id_order LIMIT {int(sample)}"
    )
    references = [row[0] for row in cursor.fetchall()]
    cursor.close()
    cursor = connection.cursor()  # type: ignore[attr-defined]
    started = time.perf_counter()
    queries = sum(per_order_queries(cursor, prefix, reference) for reference in references)
    seconds = time.perf_counter() - started
    connection.close()  # type: ignore[attr-defined]
    return {
        "seconds": seconds,
        "references": len(references),
        "queries": queries,
        "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


if __name__ == "__main__":
    print(json.dumps(measure_per_order(sys.argv[1], int(sys.argv[2]))))
