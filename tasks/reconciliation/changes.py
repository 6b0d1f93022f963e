"""The changes --apply makes to the shop (or would make), in words: one line per shop row."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

from schemas.corrections import (
    AppliedFix,
    Difference,
    Role,
)
from tasks.reconciliation.compare import OrderFix
from tasks.reconciliation.shop_fixes import _address_target, _on_address


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
