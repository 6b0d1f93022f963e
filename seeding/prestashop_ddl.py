"""PrestaShop's real DDL (install-dev/data/db_structure.sql) of the tables the ETL reads, per version."""

from __future__ import annotations

import re
from pathlib import Path

from sqlalchemy.engine import Engine

PRESTASHOP_VERSIONS = ("1.7.8.1", "8.0", "9.1.0")

DDL_FOLDER = Path(__file__).parent / "ddl"

# What PrestaShop's installer puts in place of db_structure.sql's placeholders.
_PLACEHOLDERS = {"ENGINE_TYPE": "InnoDB", "COLLATION": "COLLATE utf8mb4_general_ci"}


def prestashop_ddl(version: str, prefix: str = "ps_") -> list[str]:
    """One PrestaShop version's CREATE TABLE statements, placeholders filled, tables named `prefix + name`."""
    if version not in PRESTASHOP_VERSIONS:
        known = ", ".join(PRESTASHOP_VERSIONS)
        raise ValueError(f"no vendored DDL for PrestaShop {version!r}; known versions: {known}")
    source = (DDL_FOLDER / f"{version}.sql").read_text(encoding="utf-8")
    sql = "\n".join(line for line in source.splitlines() if not line.startswith("--"))
    for placeholder, value in _PLACEHOLDERS.items():
        sql = re.sub(rf"\b{placeholder}\b", value, sql)
    sql = re.sub(r"\bPREFIX_", prefix, sql)
    return [statement.strip() for statement in re.split(r";\s*$", sql, flags=re.M) if statement.strip()]


def create_prestashop_schema(engine: Engine, version: str, prefix: str = "ps_") -> None:
    """Create one PrestaShop version's real tables in the database `engine` points at."""
    with engine.begin() as connection:
        for statement in prestashop_ddl(version, prefix):
            connection.exec_driver_sql(statement)
