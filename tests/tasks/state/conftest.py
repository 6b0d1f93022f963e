"""State stores for the state tests: a fresh database on each backend the state store supports."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.exc import OperationalError
from sqlalchemy.pool import NullPool

POSTGRES_SERVER = "postgresql+psycopg2://postgres@127.0.0.1:5432/postgres"


@pytest.fixture(params=["sqlite", "postgresql", "mysql"])
def state_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, empty state store database on each supported backend."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'nested' / 'state.sqlite'}"
    elif request.param == "mysql":
        yield request.getfixturevalue("mysql_database_factory")()
    else:
        admin = create_engine(POSTGRES_SERVER, poolclass=NullPool, isolation_level="AUTOCOMMIT")
        name = f"sequra_etl_state_{secrets.token_hex(4)}"
        try:
            with admin.connect() as conn:
                conn.execute(text(f"CREATE DATABASE {name}"))
        except OperationalError as error:
            pytest.skip(f"no PostgreSQL at {POSTGRES_SERVER}: {error.orig}")
        yield POSTGRES_SERVER.rsplit("/", 1)[0] + f"/{name}"
        with admin.connect() as conn:
            conn.execute(text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
