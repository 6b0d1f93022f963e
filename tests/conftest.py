"""Shared fixtures: scratch MySQL/MariaDB databases, with or without a real PrestaShop schema."""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable, Iterator

import pytest
from prefect.testing.utilities import prefect_test_harness
from sqlalchemy import create_engine
from sqlalchemy.engine import URL, Engine, make_url
from sqlalchemy.exc import OperationalError
from sqlalchemy.pool import NullPool

from sandbox.server import SandboxServer
from seeding.prestashop_ddl import create_prestashop_schema

DEFAULT_TEST_MYSQL_URL = "mysql+pymysql://root@127.0.0.1:3306/"


class ScratchDatabases:
    """Creates throwaway `sequra_etl_test_<8 hex>` databases on one server and drops them all at the end."""

    def __init__(self, server_url: URL) -> None:
        self._server_url = server_url
        self._names: list[str] = []
        self._engines: list[Engine] = []

    def _admin(self) -> Engine:
        return create_engine(self._server_url, poolclass=NullPool)

    def create(self) -> URL:
        """Create an empty utf8mb4 database and return its URL (charset=utf8mb4)."""
        name = f"sequra_etl_test_{secrets.token_hex(4)}"
        with self._admin().connect() as connection:
            connection.exec_driver_sql(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4")
        self._names.append(name)
        return self._server_url.set(database=name, query={"charset": "utf8mb4"})

    def engine(self) -> Engine:
        """An Engine to a new empty database, disposed of when the databases are dropped."""
        engine = create_engine(self.create())
        self._engines.append(engine)
        return engine

    def drop_all(self) -> None:
        """Dispose of the engines handed out, then drop every database created."""
        for engine in self._engines:
            engine.dispose()
        with self._admin().connect() as connection:
            for name in self._names:
                connection.exec_driver_sql(f"DROP DATABASE IF EXISTS `{name}`")


@pytest.fixture(scope="session", autouse=True)
def _user_data_folder(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """The default state store of every test lives in a scratch data folder, never the user's own."""
    before = os.environ.get("XDG_DATA_HOME")
    os.environ["XDG_DATA_HOME"] = str(tmp_path_factory.mktemp("user-data"))
    yield
    if before is None:
        os.environ.pop("XDG_DATA_HOME", None)
    else:
        os.environ["XDG_DATA_HOME"] = before


@pytest.fixture(scope="session")
def mysql_server_url() -> str:
    """The test MySQL/MariaDB server (env TEST_MYSQL_URL); skips the test if unreachable, fails it on CI."""
    url = make_url(os.environ.get("TEST_MYSQL_URL", DEFAULT_TEST_MYSQL_URL))
    engine = create_engine(url, poolclass=NullPool, connect_args={"connect_timeout": 3})
    try:
        with engine.connect():
            pass
    except OperationalError as error:
        reason = (
            f"no MySQL/MariaDB server at {url.render_as_string(hide_password=True)} ({error.orig}); "
            "start one or point TEST_MYSQL_URL at one, e.g. mysql+pymysql://root@127.0.0.1:3306/"
        )
        if os.environ.get("CI") == "true":
            pytest.fail(reason)
        pytest.skip(reason)
    return url.render_as_string(hide_password=False)


@pytest.fixture(scope="session")
def mysqlclient() -> None:
    """mysqlclient, the fast shop reader (the `fast` extra); skips the test without it, fails it on CI."""
    try:
        import MySQLdb  # noqa: F401
    except ImportError as error:
        reason = (
            f"mysqlclient is not installed ({error}); pip install -e '.[fast]' "
            "(it needs libmariadb-dev or libmysqlclient-dev, and pkg-config)"
        )
        if os.environ.get("CI") == "true":
            pytest.fail(reason)
        pytest.skip(reason)


@pytest.fixture(scope="session")
def _mysql_scratch(mysql_server_url: str) -> Iterator[ScratchDatabases]:
    scratch = ScratchDatabases(make_url(mysql_server_url))
    yield scratch
    scratch.drop_all()


@pytest.fixture(scope="session")
def mysql_database_url(_mysql_scratch: ScratchDatabases) -> str:
    """The URL of a fresh, empty utf8mb4 database for the session, dropped at its end."""
    return _mysql_scratch.create().render_as_string(hide_password=False)


@pytest.fixture(scope="session")
def mysql_shop_engine_factory(_mysql_scratch: ScratchDatabases) -> Callable[..., Engine]:
    """Call with a PrestaShop version (and table prefix) for an Engine to a new database with its real DDL."""

    def shop_engine(version: str, prefix: str = "ps_") -> Engine:
        engine = _mysql_scratch.engine()
        create_prestashop_schema(engine, version, prefix)
        return engine

    return shop_engine


@pytest.fixture(scope="session")
def mysql_database_factory(_mysql_scratch: ScratchDatabases) -> Callable[[], str]:
    """Call for the URL of another fresh, empty utf8mb4 database, dropped at the end of the session."""
    return lambda: _mysql_scratch.create().render_as_string(hide_password=False)


@pytest.fixture(scope="session")
def sandbox_server() -> Iterator[SandboxServer]:
    """The local SeQura sandbox on a free loopback port, for the whole session."""
    with SandboxServer(port=0) as server:
        yield server


@pytest.fixture(scope="session")
def prefect_harness() -> Iterator[None]:
    """A real Prefect API (SQLite-backed, on a free port) for every flow run of the session."""
    with prefect_test_harness(server_startup_timeout=120):
        yield
