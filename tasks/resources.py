"""What a run works with, opened once and handed to its stages: the state store, the shop, SeQura.

A run (a delivery report, adopt, a reconciliation) opens one state-store engine, one shop engine and, when
it talks to SeQura, one HTTP session, and closes them at its end; no stage builds its own from the settings.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from types import TracebackType

from sqlalchemy import Engine

from schemas.frames import ShopConfig
from schemas.prestashop import ShopTables, shop_tables
from schemas.settings import Settings
from tasks.clock import Clock
from tasks.extract.configuration import read_config
from tasks.extract.connection import shop_engine
from tasks.extract.scope import OrderFilter
from tasks.sequra_client import HttpSequraClient
from tasks.state.store import StateStore, check_writable, open_state_store

LOG = logging.getLogger("sequra_etl")  # outside a flow run, the run's logs (SeQura's retries) go here


@dataclass
class RunResources:
    """One run's connections: its state store, its shop engine, and its SeQura client, made once each."""

    settings: Settings
    store: StateStore
    shop_engine: Engine | None  # None where SHOP_DB_URL is not set (a release needs only the store)
    log: logging.Logger | logging.LoggerAdapter = LOG
    _sequra: HttpSequraClient | None = field(default=None, repr=False)
    _config: ShopConfig | None = field(default=None, repr=False)

    @classmethod
    def open(
        cls,
        settings: Settings,
        *,
        log: logging.Logger | logging.LoggerAdapter = LOG,
        clock: Clock | None = None,
    ) -> RunResources:
        """Open the state store (creating and migrating it on first use) and an engine on the shop."""
        store = open_state_store(settings.state_url(), clock)
        shop = (
            None
            if settings.shop_db_url is None
            else shop_engine(settings.shop_db_url, fast=settings.fast_reader)
        )
        return cls(settings, store, shop, log)

    @property
    def merchant(self) -> str:
        """The SeQura merchant the run is for."""
        return self.settings.merchant_id or ""

    @property
    def clock(self) -> Clock:
        """The clock the run reads time from (the state store's)."""
        return self.store.clock

    @property
    def tables(self) -> ShopTables:
        """The shop's tables, with its prefix."""
        return shop_tables(self.settings.shop_table_prefix)

    @property
    def shop(self) -> Engine:
        """The engine on the shop; SettingError naming SHOP_DB_URL where it is not set."""
        if self.shop_engine is None:
            self.settings.require("shop_db_url")
        assert self.shop_engine is not None
        return self.shop_engine

    @property
    def order_filter(self) -> OrderFilter:
        """Which orders of the shop are the merchant's SeQura orders."""
        settings = self.settings
        return OrderFilter(
            settings.payment_modules,
            settings.shop_id,
            settings.delivery_countries,
            settings.claimed_elsewhere,
        )

    def shop_config(self) -> ShopConfig:
        """The shop's configuration, read once per run; reads the shop."""
        if self._config is None:
            self._config = read_config(self.shop, self.tables, self.settings.shop_id)
        return self._config

    def shop_timezone(self) -> str:
        """The shop's time zone, or UTC where SHOP_DB_URL is not set; reads the shop."""
        return "UTC" if self.shop_engine is None else self.shop_config().timezone

    def check_ready(self) -> None:
        """Check, before any run starts, that the state store can be written and the shop read; reads both.

        A wrong password, an unreachable server, a missing table, a damaged or read-only state store is one
        error naming the setting to check (ShopReadError, StateStoreError), with no run begun.
        """
        check_writable(self.store)
        self.shop_config()

    def sequra(self) -> HttpSequraClient:
        """The run's one SeQura client (one HTTP session), made on first use; SettingError if unset."""
        if self._sequra is None:
            settings = self.settings
            settings.require("username", "password", "merchant_id")
            assert settings.username is not None and settings.password is not None
            self._sequra = HttpSequraClient(
                settings.api_url,
                settings.username,
                settings.password,
                self.merchant,
                timeout_seconds=settings.timeout_seconds,
                max_attempts=settings.max_attempts,
                backoff_seconds=settings.backoff_seconds,
                clock=self.clock,
                log=self.log,
            )
        return self._sequra

    def close(self) -> None:
        """Close the SeQura session and dispose of both engines."""
        if self._sequra is not None:
            self._sequra.close()
        if self.shop_engine is not None:
            self.shop_engine.dispose()
        self.store.dispose()

    def __enter__(self) -> RunResources:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.close()


def read_shop_timezone(settings: Settings) -> str:
    """The time zone (PS_TIMEZONE) of the shop `settings` name, for a parent run that opens no resources.

    Opens the shop for one query and closes it; raises SettingError without SHOP_DB_URL, ShopReadError when
    the shop cannot be read.
    """
    settings.require("shop_db_url")
    assert settings.shop_db_url is not None
    engine = shop_engine(settings.shop_db_url, fast=settings.fast_reader)
    try:
        return read_config(engine, shop_tables(settings.shop_table_prefix), settings.shop_id).timezone
    finally:
        engine.dispose()
