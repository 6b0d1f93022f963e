"""Settings: every environment variable the project reads, named once, checked once."""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal

import platformdirs
from pydantic import SecretStr
from sqlalchemy.engine import URL, make_url

from schemas.errors import SettingError
from schemas.merchants import MerchantAccount, parse_merchants
from schemas.setting_values import (
    DEFAULT_SEQURA_API_URL,
    parse_admin_url,
    parse_api_url,
    parse_count,
    parse_database_url,
    parse_flag,
    parse_merchant_id,
    parse_modules,
    parse_optional_database_url,
    parse_optional_int,
    parse_order_ref_field,
    parse_overlap_minutes,
    parse_percent,
    parse_positive_int,
    parse_retention_days,
    parse_seconds,
    parse_shipment_channel,
    parse_silence_hours,
    parse_table_prefix,
    parse_text,
)

OUTPUT_DIR = Path(".sequra-etl")
"""Where dry runs and reconciliations write their files by default, in the working directory (git-ignored)."""


def default_state_store() -> Path:
    """The state store's default file: in the user's data folder, wherever a command is started.

    ~/.local/share/sequra-etl/state.sqlite on Linux (or under $XDG_DATA_HOME), the matching folder on macOS
    and Windows.
    """
    return Path(platformdirs.user_data_dir("sequra-etl", appauthor=False)) / "state.sqlite"


@dataclass(frozen=True)
class Setting:
    """One environment variable: its name, default and parser."""

    env: str
    default: str | None
    parse: Callable[[str, str], Any]
    help: str


SETTINGS: dict[str, Setting] = {
    "shop_db_url": Setting(
        "SHOP_DB_URL",
        None,
        parse_database_url,
        "SQLAlchemy URL of the PrestaShop database (mysql+pymysql://…)",
    ),
    "shop_table_prefix": Setting("SHOP_TABLE_PREFIX", "ps_", parse_table_prefix, "PrestaShop table prefix"),
    "shop_id": Setting("SHOP_ID", "", parse_optional_int, "multistore: only orders of this id_shop"),
    "payment_modules": Setting(
        "SEQURA_PAYMENT_MODULES",
        "sequrapayment",
        parse_modules,
        "orders.module values that are SeQura orders",
    ),
    "order_ref_field": Setting(
        "SEQURA_ORDER_REF_FIELD", "reference", parse_order_ref_field, "shop field sent as order_ref_1"
    ),
    "api_url": Setting("SEQURA_API_URL", DEFAULT_SEQURA_API_URL, parse_api_url, "SeQura API base URL"),
    "username": Setting("SEQURA_USERNAME", None, parse_text, "SeQura API user"),
    "password": Setting("SEQURA_PASSWORD", None, parse_text, "SeQura API password"),
    "merchant_id": Setting(
        "SEQURA_MERCHANT_ID", None, parse_merchant_id, "SeQura merchant id (Sequra-Merchant-Id)"
    ),
    "state_db_url": Setting(
        "STATE_DB_URL",
        "",
        parse_optional_database_url,
        "state store URL; default a SQLite file in the user's data folder",
    ),
    "batch_size": Setting(
        "SEQURA_BATCH_SIZE", "5000", parse_positive_int, "orders per delivery report request"
    ),
    "timeout_seconds": Setting(
        "SEQURA_TIMEOUT_SECONDS",
        "30",
        parse_seconds,
        "deadline of one request, whole: from connecting to the last byte of the answer",
    ),
    "max_attempts": Setting(
        "SEQURA_MAX_ATTEMPTS", "5", parse_positive_int, "attempts per request on 5xx/429"
    ),
    "backoff_seconds": Setting(
        "SEQURA_BACKOFF_SECONDS", "1", parse_seconds, "first retry delay, doubled each time"
    ),
    "chunk_size": Setting(
        "SHOP_CHUNK_SIZE",
        "5000",
        parse_positive_int,
        "order references per chunk: read, built, sent and committed together",
    ),
    "fast_reader": Setting(
        "SHOP_FAST_READER",
        "true",
        parse_flag,
        "read MySQL/MariaDB with mysqlclient when it is installed (pip install -e '.[fast]')",
    ),
    "build_processes": Setting(
        "SHOP_BUILD_PROCESSES",
        "2",
        parse_count,
        "processes reading and building a run's next chunks while it sends; 0: in the run's own process",
    ),
    "overlap_minutes": Setting(
        "DELIVERY_OVERLAP_MINUTES",
        "360",
        parse_overlap_minutes,
        "scheduled runs start this long before the last until",
    ),
    "first_run_days": Setting(
        "DELIVERY_FIRST_RUN_DAYS", "7", parse_positive_int, "window of the very first run, in days"
    ),
    "shipment_channel": Setting(
        "SEQURA_SHIPMENT_CHANNEL",
        "delivery_report",
        parse_shipment_channel,
        "how shipments reach SeQura: delivery_report (as the PrestaShop module) or order_update",
    ),
    "send_statistics": Setting(
        "SEQURA_SEND_STATISTICS",
        "true",
        parse_flag,
        "send SeQura the statistics block (every order of the last 7 days) once a shop-local day, alone "
        "when nothing shipped",
    ),
    "run_lease_seconds": Setting(
        "SEQURA_RUN_LEASE_SECONDS",
        "600",
        parse_seconds,
        "how long a run that stopped renewing its lock (killed) still blocks the next one",
    ),
    "shop_admin_url": Setting(
        "SHOP_ADMIN_URL",
        "",
        parse_admin_url,
        "the back office's address (https://shop.example/admin123/): reconciliations link to its pages",
    ),
    "corrections_username": Setting(
        "CORRECTIONS_USERNAME",
        None,
        parse_text,
        "user for the corrections URL (Basic auth); on SEQURA_API_URL's host SEQURA_USERNAME is used",
    ),
    "corrections_password": Setting(
        "CORRECTIONS_PASSWORD", None, parse_text, "password for the corrections URL"
    ),
    "corrections_timeout_seconds": Setting(
        "CORRECTIONS_TIMEOUT_SECONDS", "60", parse_seconds, "timeout of the corrections download"
    ),
    "merchants": Setting(
        "SEQURA_MERCHANTS",
        "",
        parse_merchants,
        "several SeQura merchants: JSON mapping each merchant id to its shop (id_shop), delivery countries "
        "and API user (README, 'Several merchants'); or block:NAME",
    ),
    "lock_wait_seconds": Setting(
        "SEQURA_LOCK_WAIT_SECONDS",
        "1800",
        parse_seconds,
        "how long a run waits for another run of its merchant to finish before it stops",
    ),
    "retention_days": Setting(
        "STATE_RETENTION_DAYS",
        "400",
        parse_retention_days,
        "days the state store keeps the buyer data of what it sent (names, emails, addresses, phones, "
        "trackings); then each order keeps only its fingerprint, amounts and dates",
    ),
    "payout_grace_days": Setting(
        "PAYOUT_GRACE_DAYS",
        "30",
        parse_positive_int,
        "days SeQura may take to pay a shipped order: one reported longer before its latest disbursement's "
        "period end and paid in none is not_paid",
    ),
    "alert_silence_hours": Setting(
        "ALERT_SILENCE_HOURS",
        "26",
        parse_silence_hours,
        "hours a merchant may go without a successful delivery report before an alert (decimals allowed)",
    ),
    "alert_quarantine_share": Setting(
        "ALERT_QUARANTINE_SHARE",
        "5",
        parse_percent,
        "percent of the orders a run found that it may quarantine before an alert (read by the runs)",
    ),
}


SECRETS = ("password", "corrections_password")


FROM_BLOCKS = (  # settings that may name a Prefect Secret block instead of holding the value
    "shop_db_url",
    "state_db_url",
    "username",
    "password",
    "corrections_username",
    "corrections_password",
    "merchants",
)


BLOCK_PREFIX = "block:"


@functools.cache
def secret_block_value(env: str, name: str) -> str:
    """The value kept in the Prefect Secret block `name` (read once per process), for the setting `env`."""
    from prefect.blocks.system import Secret

    try:
        value = Secret.load(name, _sync=True).get()  # type: ignore[union-attr]
    except ValueError:
        raise SettingError(
            env,
            f"names the Secret block '{name}', which the Prefect server does not have; create it with "
            "`sequra-etl configure` or in the UI (Blocks), or check PREFECT_API_URL",
        ) from None
    return str(value)


def unblocked(env: str, value: str) -> str:
    """The value itself, or, for block:NAME, the one kept in the Prefect Secret block NAME."""
    return (
        secret_block_value(env, value.removeprefix(BLOCK_PREFIX)) if value.startswith(BLOCK_PREFIX) else value
    )


@dataclass(frozen=True)
class Settings:
    """The checked settings of one run; the password never shows in a repr."""

    shop_db_url: URL | None
    shop_table_prefix: str
    shop_id: int | None
    payment_modules: tuple[str, ...]
    order_ref_field: Literal["reference", "id_order"]
    api_url: str
    username: str | None
    password: SecretStr | None = field(repr=False)
    merchant_id: str | None
    state_db_url: URL | None
    batch_size: int
    timeout_seconds: float
    max_attempts: int
    backoff_seconds: float
    chunk_size: int
    fast_reader: bool
    build_processes: int
    overlap_minutes: int
    first_run_days: int
    shipment_channel: Literal["delivery_report", "order_update"]
    send_statistics: bool
    run_lease_seconds: float
    shop_admin_url: str | None
    corrections_username: str | None
    corrections_password: SecretStr | None = field(repr=False)
    corrections_timeout_seconds: float
    merchants: tuple[MerchantAccount, ...]
    lock_wait_seconds: float
    retention_days: int
    payout_grace_days: int
    alert_silence_hours: float
    alert_quarantine_share: Decimal
    delivery_countries: tuple[str, ...] = ()  # the merchant's delivery countries (SEQURA_MERCHANTS)
    claimed_elsewhere: tuple[tuple[int | None, tuple[str, ...]], ...] = ()  # (shop, countries) of the others

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        """Read every setting from the environment (or `environ`), then apply non-None overrides."""
        environ = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for attr, setting in SETTINGS.items():
            raw = environ.get(setting.env, setting.default)
            if raw is not None and attr in FROM_BLOCKS:
                raw = unblocked(setting.env, raw)
            values[attr] = None if raw is None else setting.parse(setting.env, raw)
        for secret in SECRETS:
            if values[secret] is not None:
                values[secret] = SecretStr(values[secret])
        settings = cls(**values).with_overrides(**overrides)
        if settings.merchants and settings.shop_id is not None:
            raise SettingError(
                SETTINGS["shop_id"].env,
                "is set with SEQURA_MERCHANTS: give each merchant its shop there instead",
            )
        asked = overrides.get("merchant_id")
        if not settings.merchants and asked is not None and asked != values["merchant_id"]:
            configured = f"is {values['merchant_id']} here" if values["merchant_id"] else "is not set here"
            raise SettingError(
                SETTINGS["merchant_id"].env,
                f"{configured}, and the run is for merchant {asked}: without SEQURA_MERCHANTS this machine "
                "cannot tell that merchant's orders from others; set SEQURA_MERCHANT_ID (one merchant) or "
                "SEQURA_MERCHANTS (several) here, and on every worker",
            )
        return settings.of_merchant()

    def with_overrides(self, **overrides: Any) -> Settings:
        """Return a copy with the given attributes replaced, each parsed like its variable."""
        parsed: dict[str, Any] = {}
        for attr, value in overrides.items():
            if value is None:
                continue
            if attr not in SETTINGS:
                raise SettingError(attr, "is not a setting")
            if isinstance(value, str):
                value = SETTINGS[attr].parse(SETTINGS[attr].env, value)
            parsed[attr] = SecretStr(value) if attr in SECRETS and isinstance(value, str) else value
        return replace(self, **parsed)

    def of_merchant(self) -> Settings:
        """With SEQURA_MERCHANTS: the merchant's shop, delivery countries and API user put in place.

        The merchant is merchant_id, or the only one configured. Raises a SettingError for a merchant that
        SEQURA_MERCHANTS does not name.
        """
        if not self.merchants:
            return self
        accounts = {account.merchant_id: account for account in self.merchants}
        merchant = self.merchant_id or (next(iter(accounts)) if len(accounts) == 1 else None)
        if merchant is None:
            return self
        if merchant not in accounts:
            raise SettingError(
                SETTINGS["merchants"].env,
                f"does not name merchant {merchant}; it names {', '.join(accounts)}",
            )
        account = accounts[merchant]
        credentials = {
            attr: unblocked(SETTINGS["merchants"].env, value)
            for attr, value in (("username", account.username), ("password", account.password))
            if value is not None
        }
        others = [other for other in self.merchants if other is not account and other.shares_shops(account)]
        return replace(
            self,
            merchant_id=merchant,
            shop_id=account.shop_id,
            delivery_countries=account.countries,
            claimed_elsewhere=()
            if account.countries
            else tuple((other.shop_id, other.countries) for other in others if other.countries),
            username=credentials.get("username", self.username),
            password=SecretStr(credentials["password"]) if "password" in credentials else self.password,
        )

    def merchant_ids(self) -> tuple[str, ...]:
        """Every merchant runs deliver for: those of SEQURA_MERCHANTS, or SEQURA_MERCHANT_ID."""
        if self.merchants:
            return tuple(account.merchant_id for account in self.merchants)
        self.require("merchant_id")
        return (self.merchant_id or "",)

    def require(self, *attrs: str) -> None:
        """Raise a SettingError for the first of `attrs` that is unset."""
        for attr in attrs:
            if attr == "merchant_id" and not self.merchant_id and len(self.merchants) > 1:
                raise SettingError(
                    SETTINGS["merchants"].env,
                    f"names several merchants ({', '.join(a.merchant_id for a in self.merchants)}): say "
                    "which one (the merchant parameter, --merchant), or run them all with every-merchant "
                    "or backfill",
                )
            if getattr(self, attr) in (None, ""):
                setting = SETTINGS[attr]
                raise SettingError(setting.env, f"is not set; set it to the {setting.help}")

    def run_lease(self) -> timedelta:
        """How long the run lock of a run that stopped renewing it (killed) still holds."""
        return timedelta(seconds=self.run_lease_seconds)

    def lock_wait(self) -> timedelta:
        """How long a run waits for the merchant's run lock before it stops."""
        return timedelta(seconds=self.lock_wait_seconds)

    def alert_silence(self) -> timedelta:
        """How long a merchant may go without a successful delivery report before an alert."""
        return timedelta(hours=self.alert_silence_hours)

    def state_url(self) -> str:
        """The state store URL, password included: STATE_DB_URL, or a SQLite file in the user data folder."""
        if self.state_db_url is not None:
            return self.state_db_url.render_as_string(hide_password=False)
        return f"sqlite:///{default_state_store()}"


PASSWORD_QUERY_KEYS = ("password", "passwd", "pwd")


def has_password(url: str) -> bool:
    """Whether a database URL holds a password, in its user part or in its query string."""
    parsed = make_url(url)
    return bool(parsed.password) or any(key in parsed.query for key in PASSWORD_QUERY_KEYS)


def settings_table() -> list[tuple[str, str, str]]:
    """Every setting as (variable, default, meaning), for the README and --help."""
    return [(s.env, s.default or "", s.help) for s in SETTINGS.values()]
