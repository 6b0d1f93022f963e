"""How each setting's text is read: one parser per kind of value, each naming the setting it refuses."""

from __future__ import annotations

import ipaddress
import math
import re
from decimal import Decimal, InvalidOperation
from typing import Literal
from urllib.parse import SplitResult, urlsplit

from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

from schemas.errors import SettingError
from schemas.masking import SECRET_QUERY_KEY, masked_url
from schemas.sequra import DOT_SEGMENTS, segments_as_read
from schemas.shown import shown

DEFAULT_SEQURA_API_URL = "https://sandbox.sequrapi.com/"
URL_CHARACTERS = re.compile(r"[A-Za-z0-9\-._~:/?#\[\]@!$&'()*+,;=%]+")  # RFC 3986's, nothing else
LABEL = r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
HOST_AND_PORT = re.compile(rf"(?:{LABEL}(?:\.{LABEL})*\.?|\[[0-9a-f:.]+\])(?::[1-9][0-9]*)?")
MERCHANT_ID = re.compile(r"[A-Za-z0-9_.-]+")


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


def parse_count(name: str, value: str) -> int:
    """Parse a whole number, zero or more, or raise a SettingError naming the setting."""
    if not re.fullmatch(r"\d+", value.strip()):
        raise SettingError(name, f"'{value}' is not a whole number (0 or more)")
    return int(value)


def parse_seconds(name: str, value: str) -> float:
    """Parse a finite number of seconds above zero or raise a SettingError naming the setting."""
    try:
        number = float(value)
    except ValueError:
        number = -1.0
    if not math.isfinite(number) or number <= 0:
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


def is_loopback(host: str | None) -> bool:
    """Whether `host` names this machine: localhost, or a loopback address (127.0.0.0/8, ::1)."""
    if host is None:
        return False
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _url_shown(url: str) -> str:
    """A URL setting as an error shows it: masked, quoted, on one line; hidden if it may hold a password."""
    masked = masked_url(url)
    if masked == url and ("@" in url or SECRET_QUERY_KEY.search(url)):
        return "the value (not shown: it may hold a password)"
    return f"'{shown(masked, 200)}'"


def _not_a_web_url(url: str) -> str:
    """The problem of a value that is no http(s) URL."""
    return f"{_url_shown(url)} is not an http(s) URL like {DEFAULT_SEQURA_API_URL}"


def _web_url(name: str, url: str) -> SplitResult:
    """`url` split, when it is an http(s) URL of URL characters and a valid port; a SettingError otherwise."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number from 0 to 65535
    except ValueError:
        raise SettingError(name, _not_a_web_url(url)) from None
    if not URL_CHARACTERS.fullmatch(url) or parts.scheme not in ("http", "https"):
        raise SettingError(name, _not_a_web_url(url))
    return parts


def parse_api_url(name: str, value: str) -> str:
    """Check the SeQura base URL and give it its trailing slash.

    SeQura's password goes only over TLS or to this machine: https, or http to loopback. The URL holds no
    user or password (they would show wherever it does), and requests go where it says: no '.' or '..'
    segment (also percent-encoded), no query or fragment for the API's paths to be lost in.
    """
    url = value.strip()
    parts = _web_url(name, url)
    shown = _url_shown(url)
    if "@" in parts.netloc:
        raise SettingError(
            name,
            f"{shown} holds a user or password, which would show wherever the URL does: give the URL "
            "without it, and the credentials in SEQURA_USERNAME and SEQURA_PASSWORD",
        )
    if not HOST_AND_PORT.fullmatch(parts.netloc.lower()):
        raise SettingError(
            name, f"{shown} has no valid host name, address or port, like {DEFAULT_SEQURA_API_URL}"
        )
    if parts.scheme == "http" and not is_loopback(parts.hostname):
        raise SettingError(
            name,
            f"{shown} is plain http to another machine, so SeQura's password would cross the network "
            f"readable: use its https address (e.g. {DEFAULT_SEQURA_API_URL}); http is only for this machine "
            "(127.0.0.1, localhost)",
        )
    if "?" in url or "#" in url:
        raise SettingError(
            name, f"{shown} has a query or a fragment (?…, #…); give the base URL alone, like the default"
        )
    if any(segment in DOT_SEGMENTS for segment in segments_as_read(parts.path)):
        raise SettingError(
            name,
            f"{shown} has a '.' or '..' segment in its path (also as %2e), which sends requests elsewhere "
            "than it says: write the path without it",
        )
    return url if url.endswith("/") else url + "/"


def is_merchant_id(text: str) -> bool:
    """Whether `text` can be a SeQura merchant id (a URL segment): letters, digits, _ . -, not only dots."""
    return bool(MERCHANT_ID.fullmatch(text)) and text.strip(".") != ""


def parse_merchant_id(name: str, value: str) -> str:
    """Check a SeQura merchant id (empty means unset), a segment of SeQura's order URL."""
    if value and not is_merchant_id(value):
        raise SettingError(
            name, f"{value[:60]!r} is not a SeQura merchant id: use letters, digits, _ . - like demo_merchant"
        )
    return value


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


SILENCE_SECONDS_AT_LEAST = 10  # Prefect's shortest window for a proactive automation
SILENCE_HOURS_AT_MOST = 8_760  # a year


def parse_silence_hours(name: str, value: str) -> float:
    """Hours without a successful report before an alert: from 10 seconds (Prefect's least) to a year."""
    try:
        hours = float(value)
    except ValueError:
        hours = math.nan
    if not math.isfinite(hours) or not SILENCE_SECONDS_AT_LEAST / 3600 <= hours <= SILENCE_HOURS_AT_MOST:
        raise SettingError(
            name,
            f"'{shown(value)}' is not a number of hours from 0.003 (10 seconds, Prefect's shortest window) "
            f"to {SILENCE_HOURS_AT_MOST} (a year), like 26 or 1.5",
        )
    return hours


def parse_percent(name: str, value: str) -> Decimal:
    """A share in percent, from 0 to 100, decimals allowed."""
    try:
        percent = Decimal(value.strip())
    except InvalidOperation:
        percent = Decimal("NaN")
    if not percent.is_finite() or not 0 <= percent <= 100:
        raise SettingError(name, f"'{shown(value)}' is not a percentage from 0 to 100, like 5 or 2.5")
    return percent
