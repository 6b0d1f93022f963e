"""SeQura's validation rules for delivery reports and order updates, as pure functions over decoded JSON.

Every function returns a list of error strings; an empty list means valid. The rules are written
from the API notes, independently of the client's models, so that the sandbox checks the client.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import NamedTuple

import orjson

Check = Callable[[object, str], list[str]]

ORDER_STATES = ("shipped", "delivered")
STATISTICS_STATUSES = ("processing", "shipped", "cancelled")
ITEM_TYPES = ("product", "service", "handling", "discount", "invoice_fee", "other_payment", "registration")
TRACKING_TYPES = ("postal", "pickup_point", "pickup_store")
REQUIRED_ITEM_FIELDS: dict[str, tuple[str, ...]] = {
    "product": ("reference", "name", "quantity", "price_with_tax", "total_with_tax"),
    "service": ("reference", "name", "quantity", "price_with_tax", "total_with_tax"),
    "handling": ("reference", "name", "total_with_tax"),
    "discount": ("reference", "name", "total_with_tax"),
    "other_payment": ("reference", "name", "total_with_tax"),
    "invoice_fee": ("total_with_tax",),
    "registration": ("total_with_tax",),
}
NON_POSITIVE_ITEM_TYPES = ("discount", "other_payment")
NON_NEGATIVE_ITEM_TYPES = ("product",)
PLATFORM_REQUIRED_KEYS = ("name", "version", "uname", "db_name", "db_version")
PLATFORM_OPTIONAL_KEYS = ("plugin_version", "php_version")
ADDRESS_STRING_KEYS = (
    "given_names",
    "surnames",
    "company",
    "address_line_1",
    "address_line_2",
    "postal_code",
    "city",
    "phone",
    "mobile_phone",
    "state",
    "extra",
    "vat_number",
)
CUSTOMER_STRING_KEYS = (
    "given_names",
    "surnames",
    "title",
    "language_code",
    "nin",
    "company",
    "vat_number",
    "date_of_birth",
)
POSTAL_TRACKING_OPTIONAL_KEYS = ("reference", "carrier", "tracking_url", "delivered_at")
INVALID = "Invalid data"


class _Field(NamedTuple):
    """One key of a JSON object, the check for its value, and whether it must be present."""

    key: str
    check: Check
    required: bool


def _required(key: str, check: Check) -> _Field:
    """Declare a key that must be present."""
    return _Field(key, check, required=True)


def _optional(key: str, check: Check) -> _Field:
    """Declare a key that may be left out."""
    return _Field(key, check, required=False)


def _join(where: str, key: str) -> str:
    """Return the dotted path of key inside where."""
    return f"{where}.{key}" if where else key


def _show(value: object) -> str:
    """Render a value as JSON for an error message, shortened when long."""
    text = json.dumps(value, ensure_ascii=False)
    return text if len(text) <= 60 else text[:57] + "..."


def _null_error(where: str) -> str:
    """Describe a JSON null, which SeQura clients leave out instead of sending."""
    return f"{where} is null; leave the key out instead"


def _unique(errors: Iterable[str]) -> list[str]:
    """Drop repeated messages, keeping the first occurrence of each."""
    return list(dict.fromkeys(errors))


def _checked(check: Check, value: object, where: str) -> list[str]:
    """Run check on value, reporting a JSON null instead of checking it."""
    return [_null_error(where)] if value is None else check(value, where)


def _field(obj: dict[str, object], field: _Field, where: str) -> list[str]:
    """Check one key of obj; a missing key is an error only when the field is required."""
    path = _join(where, field.key)
    if field.key not in obj:
        return [f"{path} is required"] if field.required else []
    return _checked(field.check, obj[field.key], path)


def _not_object(value: object, where: str) -> list[str]:
    """Return an error unless value is a JSON object."""
    return [] if isinstance(value, dict) else [f"{where} must be an object, got {_show(value)}"]


def _object_of(*fields: _Field, closed: bool = False) -> Check:
    """Build a check for an object with the given fields; a closed object allows no other keys."""

    def check(value: object, where: str) -> list[str]:
        if not isinstance(value, dict):
            return _not_object(value, where)
        errors = [error for field in fields for error in _field(value, field, where)]
        if closed:
            known = {field.key for field in fields}
            errors += [f"{_join(where, key)} is not an allowed key" for key in value if key not in known]
        return errors

    return check


def _list_of(item_check: Check) -> Check:
    """Build a check for a list whose elements all pass item_check."""

    def check(value: object, where: str) -> list[str]:
        if not isinstance(value, list):
            return [f"{where} must be a list, got {_show(value)}"]
        return [
            error
            for index, item in enumerate(value)
            for error in _checked(item_check, item, f"{where}[{index}]")
        ]

    return check


def _anything(value: object, where: str) -> list[str]:
    """Accept any value."""
    return []


def _string(value: object, where: str) -> list[str]:
    """Return an error unless value is a string."""
    return [] if isinstance(value, str) else [f"{where} must be a string, got {_show(value)}"]


def _non_empty_string(value: object, where: str) -> list[str]:
    """Return an error unless value is a non-empty string."""
    return (
        []
        if isinstance(value, str) and value
        else [f"{where} must be a non-empty string, got {_show(value)}"]
    )


def _boolean(value: object, where: str) -> list[str]:
    """Return an error unless value is true or false."""
    return [] if type(value) is bool else [f"{where} must be true or false, got {_show(value)}"]


def _cents(value: object, where: str) -> list[str]:
    """Return an error unless value is a JSON integer (not a float, not a boolean)."""
    return [] if type(value) is int else [f"{where} must be an integer number of cents, got {_show(value)}"]


def _quantity(value: object, where: str) -> list[str]:
    """Return an error unless value is an integer of at least 1."""
    if type(value) is int and value >= 1:
        return []
    return [f"{where} must be an integer of at least 1, got {_show(value)}"]


def _is_reference(value: object) -> bool:
    """Tell whether value can identify an order: a non-empty string or an integer."""
    return type(value) is int or (isinstance(value, str) and value != "")


def _reference(value: object, where: str) -> list[str]:
    """Return an error unless value is a non-empty string or an integer."""
    if _is_reference(value):
        return []
    return [f"{where} must be a non-empty string or an integer, got {_show(value)}"]


def _string_or_integer(value: object, where: str) -> list[str]:
    """Return an error unless value is a string or an integer."""
    if type(value) is int or isinstance(value, str):
        return []
    return [f"{where} must be a string or an integer, got {_show(value)}"]


def _datetime_with_offset(value: object, where: str) -> list[str]:
    """Return an error unless value is an ISO 8601 date-time string with a UTC offset."""
    try:
        parsed = datetime.fromisoformat(value) if isinstance(value, str) else None
    except ValueError:
        parsed = None
    if parsed is not None and parsed.tzinfo is not None:
        return []
    return [f"{where} must be an ISO 8601 date-time with a UTC offset, got {_show(value)}"]


def _one_of(allowed: tuple[str, ...]) -> Check:
    """Build a check that value is one of the allowed strings."""

    def check(value: object, where: str) -> list[str]:
        if isinstance(value, str) and value in allowed:
            return []
        return [f"{where} must be one of {', '.join(allowed)}, got {_show(value)}"]

    return check


def _matching(pattern: str, description: str) -> Check:
    """Build a check that value is a string matching pattern entirely."""

    def check(value: object, where: str) -> list[str]:
        if isinstance(value, str) and re.fullmatch(pattern, value):
            return []
        return [f"{where} must be {description}, got {_show(value)}"]

    return check


ITEM_FIELD_CHECKS: dict[str, Check] = {
    "reference": _string,
    "name": _string,
    "quantity": _quantity,
    "price_with_tax": _cents,
    "total_with_tax": _cents,
}


def _sign_errors(item_type: object, total: object, where: str) -> list[str]:
    """Check that discounts and other payments do not add money and products do not remove it."""
    if type(total) is not int:
        return []
    if item_type in NON_POSITIVE_ITEM_TYPES and total > 0:
        return [f"{where}.total_with_tax of a {item_type} item must be zero or negative, got {total}"]
    if item_type in NON_NEGATIVE_ITEM_TYPES and total < 0:
        return [f"{where}.total_with_tax of a {item_type} item must be zero or positive, got {total}"]
    return []


def _item(value: object, where: str) -> list[str]:
    """Check one cart item: its type, the fields that type needs, and the sign of its total."""
    if not isinstance(value, dict):
        return _not_object(value, where)
    errors = _field(value, _required("type", _one_of(ITEM_TYPES)), where)
    item_type = value.get("type")
    needed = REQUIRED_ITEM_FIELDS.get(item_type, ()) if isinstance(item_type, str) else ()
    for key, check in ITEM_FIELD_CHECKS.items():
        errors += _field(value, _Field(key, check, required=key in needed), where)
    return errors + _sign_errors(item_type, value.get("total_with_tax"), where)


_cart_fields = _object_of(
    _required("currency", _matching(r"[A-Z]{3}", "a code of 3 uppercase letters")),
    _optional("gift", _boolean),
    _required("order_total_with_tax", _cents),
    _required("items", _list_of(_item)),
)


def _totals_error(cart: object, where: str) -> list[str]:
    """Check that order_total_with_tax is the exact sum of the items' total_with_tax."""
    if not isinstance(cart, dict) or not isinstance(cart.get("items"), list):
        return []
    total = cart.get("order_total_with_tax")
    amounts = [item.get("total_with_tax") if isinstance(item, dict) else None for item in cart["items"]]
    if type(total) is not int or any(type(amount) is not int for amount in amounts):
        return []
    added = sum(amounts)
    if added == total:
        return []
    breakdown = "+".join(str(amount) for amount in amounts) or "no items"
    return [
        f"In {where}, items' total_with_tax add up to {added} ({breakdown}) "
        f"but order_total_with_tax is {total}. The diff is {total - added}."
    ]


def validate_cart(cart: object, where: str) -> list[str]:
    """Check a cart (cart, remaining_cart, shipped_cart or unshipped_cart) named where."""
    return _cart_fields(cart, where) + _totals_error(cart, where)


_postal_tracking = _object_of(
    _required("tracking_number", _string),
    *(_optional(key, _string) for key in POSTAL_TRACKING_OPTIONAL_KEYS),
)


def _tracking(value: object, where: str) -> list[str]:
    """Check one tracking: its type and, for postal ones, the tracking number."""
    if not isinstance(value, dict):
        return _not_object(value, where)
    errors = _field(value, _required("type", _one_of(TRACKING_TYPES)), where)
    return errors + (_postal_tracking(value, where) if value.get("type") == "postal" else [])


_merchant = _object_of(_required("id", _non_empty_string))
_merchant_reference = _object_of(
    _required("order_ref_1", _reference), _optional("order_ref_2", _string_or_integer)
)
_platform = _object_of(
    *(_required(key, _string) for key in PLATFORM_REQUIRED_KEYS),
    *(_optional(key, _string) for key in PLATFORM_OPTIONAL_KEYS),
)
_delivery_method = _object_of(
    _required("name", _non_empty_string),
    _optional("days", _string),
    _optional("provider", _string),
    _optional("home_delivery", _boolean),
)
_customer = _object_of(
    _required("email", _non_empty_string),
    *(_optional(key, _string) for key in CUSTOMER_STRING_KEYS),
    _optional("ref", _string_or_integer),
    _optional("logged_in", _boolean),
)
_address = _object_of(
    *(_optional(key, _string) for key in ADDRESS_STRING_KEYS),
    _optional("country_code", _matching(r"[A-Z]{2}", "a code of 2 uppercase letters")),
    closed=True,
)
_address_and_tracking_fields = (
    _optional("delivery_address", _address),
    _optional("invoice_address", _address),
    _optional("trackings", _list_of(_tracking)),
)
_reported_order = _object_of(
    _required("state", _one_of(ORDER_STATES)),
    _optional("sent_at", _datetime_with_offset),
    _required("merchant_reference", _merchant_reference),
    _required("cart", validate_cart),
    _optional("remaining_cart", validate_cart),
    _required("delivery_method", _delivery_method),
    _required("customer", _customer),
    *_address_and_tracking_fields,
)
_updated_order = _object_of(
    _required("merchant", _merchant),
    _required("merchant_reference", _merchant_reference),
    _required("shipped_cart", validate_cart),
    _required("unshipped_cart", validate_cart),
    _optional("delivery_method", _delivery_method),
    _optional("customer", _customer),
    _optional("platform", _platform),
    *_address_and_tracking_fields,
)
_statistics_order = _object_of(
    _required("completed_at", _datetime_with_offset),
    _optional("amount", _cents),
    _required("currency", _matching(r"[A-Z]{3}", "a code of 3 uppercase letters")),
    _optional("merchant_reference", _merchant_reference),
    _optional("payment_method", _non_empty_string),
    _optional("country", _matching(r"[A-Z]{2}", "a code of 2 uppercase letters")),
    _optional("device", _string),
    _optional("status", _one_of(STATISTICS_STATUSES)),
    _optional("raw_status", _string),
    _optional("sequra_offered", _boolean),
)
_report_envelope = _object_of(
    _required("merchant", _merchant),
    _required("orders", _list_of(_anything)),
    _optional("statistics", _object_of(_required("orders", _list_of(_statistics_order)))),
    _required("platform", _platform),
)


def _null_errors(value: object, where: str) -> list[str]:
    """Name every JSON null inside value."""
    if value is None:
        return [_null_error(where)]
    if isinstance(value, dict):
        return [error for key, item in value.items() for error in _null_errors(item, _join(where, key))]
    if isinstance(value, list):
        return [
            error for index, item in enumerate(value) for error in _null_errors(item, f"{where}[{index}]")
        ]
    return []


def _nulls(value: object, where: str) -> list[str]:
    """Name every JSON null inside value, walking it only when its JSON has a null token at all.

    orjson writes every None as `null`; the text also shows in strings and keys, which only costs the walk.
    """
    try:
        has_null = b"null" in orjson.dumps(value)
    except orjson.JSONEncodeError:  # an integer beyond 64 bits, say: walk it
        has_null = True
    return _null_errors(value, where) if has_null else []


def order_ref_1(order: object) -> str | None:
    """Return an order's merchant_reference.order_ref_1 as a string, or None when it has no usable one."""
    reference = order.get("merchant_reference") if isinstance(order, dict) else None
    ref = reference.get("order_ref_1") if isinstance(reference, dict) else None
    return str(ref) if _is_reference(ref) else None


def _reported_order_errors(order: object) -> list[str]:
    """Check one order of a delivery report, without the order prefix."""
    if not isinstance(order, dict):
        return _checked(_not_object, order, "order")
    return _unique(_reported_order(order, "") + _nulls(order, ""))


def _orders_errors(orders: list[object]) -> list[str]:
    """Check every order of a report, prefixing each error with the order it is about."""
    errors: list[str] = []
    seen: set[str] = set()
    for index, order in enumerate(orders):
        problems = _reported_order_errors(order)
        ref = order_ref_1(order)
        if ref in seen:
            problems.append("merchant_reference.order_ref_1 appears more than once in this report")
        if ref is not None:
            seen.add(ref)
        label = f"order {ref}" if ref is not None else f"orders[{index}]"
        errors += [f"{INVALID}: {label}: {problem}" for problem in problems]
    return errors


def validate_delivery_report(body: object) -> list[str]:
    """Check a delivery report body; errors about one order start with `Invalid data: order <ref>: `."""
    report = body.get("delivery_report") if isinstance(body, dict) else None
    if not isinstance(report, dict):
        return [f"{INVALID}: the body must be an object with a delivery_report object"]
    errors = [f"{INVALID}: {error}" for error in _report_envelope(report, "delivery_report")]
    orders = report.get("orders")
    return errors + (_orders_errors(orders) if isinstance(orders, list) else [])


def validate_order_update(body: object, order_ref: str) -> list[str]:
    """Check an order update body sent to the URL of order order_ref."""
    order = body.get("order") if isinstance(body, dict) else None
    if not isinstance(order, dict):
        return [f"{INVALID}: the body must be an object with an order object"]
    problems = _updated_order(order, "") + _nulls(order, "")
    ref = order_ref_1(order)
    if ref is not None and ref != order_ref:
        problems.append(
            f"merchant_reference.order_ref_1 is {_show(ref)} but the URL names order {_show(order_ref)}"
        )
    return [f"{INVALID}: {problem}" for problem in _unique(problems)]
