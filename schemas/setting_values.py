"""How each setting's text is read: one parser per kind of value, each naming the setting it refuses."""

from __future__ import annotations

import re
from typing import Literal

from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

from schemas.errors import SettingError

DEFAULT_SEQURA_API_URL = "https://sandbox.sequrapi.com/"


def parse_database_url(name: str, value: str) -> URL:
    """Parse a SQLAlchemy database URL or raise a SettingError naming the setting (never its value)."""
    try:
        return make_url(value)
    except ArgumentError:
        raise SettingError(
            name,
            "is not a database URL (value not shown: it may hold a password); "
            "use e.g. mysql+pymysql://user:pass@host:3306/shop",
        ) from None


def parse_optional_database_url(name: str, value: str) -> URL | None:
    """Parse an optional database URL (empty means unset)."""
    return parse_database_url(name, value) if value.strip() else None


def parse_positive_int(name: str, value: str) -> int:
    """Parse a whole number above zero or raise a SettingError naming the setting."""
    if not re.fullmatch(r"\d+", value.strip()) or int(value) <= 0:
        raise SettingError(name, f"'{value}' is not a whole number above zero")
    return int(value)


def parse_seconds(name: str, value: str) -> float:
    """Parse a number of seconds above zero or raise a SettingError naming the setting."""
    try:
        number = float(value)
    except ValueError:
        number = -1.0
    if number <= 0:
        raise SettingError(name, f"'{value}' is not a number of seconds above zero")
    return number


def parse_modules(name: str, value: str) -> tuple[str, ...]:
    """Parse a comma-separated list of PrestaShop module technical names."""
    modules = tuple(part.strip() for part in value.split(",") if part.strip())
    if not modules or any(not re.fullmatch(r"[A-Za-z0-9_]+", m) for m in modules):
        raise SettingError(
            name, f"'{value}' is not a comma-separated list of module names like sequrapayment"
        )
    return modules


def parse_table_prefix(name: str, value: str) -> str:
    """Check a PrestaShop table prefix (letters, digits, underscore)."""
    if not re.fullmatch(r"[A-Za-z0-9_]*", value):
        raise SettingError(name, f"'{value}' is not a table prefix; use letters, digits and _ like ps_")
    return value


def parse_api_url(name: str, value: str) -> str:
    """Check the SeQura base URL and give it its trailing slash."""
    if not re.match(r"https?://[^/\s]+", value):
        raise SettingError(name, f"'{value}' is not an http(s) URL like {DEFAULT_SEQURA_API_URL}")
    return value if value.endswith("/") else value + "/"


def parse_order_ref_field(name: str, value: str) -> Literal["reference", "id_order"]:
    """Check which shop field becomes merchant_reference.order_ref_1."""
    if value not in ("reference", "id_order"):
        raise SettingError(name, f"'{value}' must be 'reference' (the default) or 'id_order'")
    return value  # type: ignore[return-value]


def parse_overlap_minutes(name: str, value: str) -> int:
    """Parse the overlap: at least an hour, so the hour repeated when clocks go back is never skipped."""
    minutes = parse_positive_int(name, value)
    if minutes < 60:
        raise SettingError(name, f"'{value}' is under 60; the overlap must cover a daylight-saving change")
    return minutes


def parse_optional_int(name: str, value: str) -> int | None:
    """Parse an optional whole number (empty means unset)."""
    return parse_positive_int(name, value) if value.strip() else None


def parse_flag(name: str, value: str) -> bool:
    """Parse a yes/no setting."""
    if value.strip().lower() in ("1", "true", "yes", "on"):
        return True
    if value.strip().lower() in ("0", "false", "no", "off"):
        return False
    raise SettingError(name, f"'{value}' is not true or false")


def parse_admin_url(name: str, value: str) -> str | None:
    """Check the back office's base URL (empty means unset) and give it its trailing slash."""
    if not value.strip():
        return None
    if not re.match(r"https?://[^/\s]+", value):
        raise SettingError(name, f"'{value}' is not an http(s) URL like https://shop.example/admin123/")
    return value if value.endswith("/") else value + "/"


def parse_text(name: str, value: str) -> str:
    """Keep a plain text setting as given."""
    return value


def parse_shipment_channel(name: str, value: str) -> str:
    """delivery_report or order_update."""
    if value not in ("delivery_report", "order_update"):
        raise SettingError(name, f"'{value}' is neither delivery_report nor order_update")
    return value


RETENTION_DAYS_AT_MOST = 36_500  # a century: the calendar goes no further back from any date a run meets


def parse_retention_days(name: str, value: str) -> int:
    """Days the state store keeps buyer data: a whole number from 1 to RETENTION_DAYS_AT_MOST."""
    days = parse_positive_int(name, value)
    if days > RETENTION_DAYS_AT_MOST:
        raise SettingError(name, f"'{value}' is more than {RETENTION_DAYS_AT_MOST} days (a century)")
    return days
