"""The reports a run would send stay byte for byte the same, on a generated shop of each PrestaShop version.

tests/fixtures/report_fingerprints.json holds, per version, the SHA-256 of every order's report as the
dry-run file carries it (the bytes SeQura would receive), of every cancellation's report, and of every
quarantine reason, for a generated shop of a few hundred orders of every kind the generator makes. After a
deliberate change of the reports, write it again with `write_fingerprints` (see its docstring).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import orjson
import pytest
from sqlalchemy import Engine
from sqlalchemy.engine import make_url

from schemas.prestashop import shop_tables
from seeding.big_shop import loading_engine, seed_big_shop
from seeding.prestashop_ddl import PRESTASHOP_VERSIONS
from tasks.delivery import read_ahead
from tasks.window import Window
from tests.runs import dry_run, settings_for
from tests.shops import build_window

FIXTURE = Path(__file__).parents[2] / "fixtures" / "report_fingerprints.json"
NOW = datetime(2026, 11, 20, 12, 0)  # shop-local
ORDERS = 300
SEED = 21
YEAR = Window(datetime(2025, 11, 1, tzinfo=UTC), datetime(2026, 11, 21, tzinfo=UTC), continues=False)

Fingerprints = dict[str, str]


def table_prefix(version: str) -> str:
    """The table prefix a shop of the version is generated with (9.1.0's is not the default one)."""
    return "shop_" if version == "9.1.0" else "ps_"


def generated_shop(database_url: str, version: str) -> Engine:
    """A shop of `version` with ORDERS shipped SeQura orders and the others the generator adds; writes it."""
    engine = loading_engine(make_url(database_url))
    seed_big_shop(
        engine, shop_tables(table_prefix(version)), ORDERS, now=NOW, seed=SEED, prestashop_version=version
    )
    return engine


def sha256(payload: bytes) -> str:
    """The hex SHA-256 of some bytes."""
    return hashlib.sha256(payload).hexdigest()


def fingerprints(engine: Engine, version: str, folder: Path) -> Fingerprints:
    """Per order, the SHA-256 of what a dry run over the year would send, cancellations and quarantines too.

    Keys are `sent <order_ref_1>` (the order's line of the dry-run file), `cancelled <order_ref_1>` (the
    cancellation's report) and `quarantined <reference>` (the reason). Writes a dry-run file in `folder`.
    """
    prefix = table_prefix(version)
    settings = settings_for(
        engine,
        f"sqlite:///{folder / f'state-{version}.sqlite'}",
        SHOP_TABLE_PREFIX=prefix,
        SHOP_CHUNK_SIZE="70",
    )
    out = folder / f"dry-{version}.json"
    dry_run(settings, YEAR, out)
    found: Fingerprints = {}
    lines = out.read_bytes().split(b"\n")[1:]  # after the opening: one order a line, then the closing
    for payload in (line.removesuffix(b",") for line in lines if line.startswith(b"{")):
        found[f"sent {orjson.loads(payload)['merchant_reference']['order_ref_1']}"] = sha256(payload)
    built = build_window(engine, shop_tables(prefix), YEAR.since, YEAR.until, chunk_size=70)
    for report in built.reports:
        if report.cancellation:
            found[f"cancelled {report.order_ref_1}"] = sha256(report.payload)
    for entry in built.quarantined:
        found[f"quarantined {entry.reference}"] = sha256(entry.reason.encode())
    return found


def write_fingerprints(database_url_of: Callable[[], str], folder: Path) -> None:
    """Write the fixture from today's code: `database_url_of()` gives an empty MariaDB database each call.

    After a deliberate change of the reports, for example (the databases are dropped at the end):
    scratch = tests.conftest.ScratchDatabases(make_url(tests.conftest.DEFAULT_TEST_MYSQL_URL));
    write_fingerprints(lambda: scratch.create().render_as_string(hide_password=False), Path("/tmp"));
    scratch.drop_all()
    """
    versions = {}
    for version in PRESTASHOP_VERSIONS:
        engine = generated_shop(database_url_of(), version)
        versions[version] = dict(sorted(fingerprints(engine, version, folder).items()))
        engine.dispose()
    FIXTURE.write_text(json.dumps(versions, indent=1) + "\n")


@pytest.mark.mysql
@pytest.mark.parametrize("version", PRESTASHOP_VERSIONS)
def test_every_report_of_a_generated_shop_is_byte_identical_to_the_recorded_one(
    version: str, mysql_database_factory: Callable[[], str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(read_ahead, "PROCESSES_FROM_CHUNKS", 1)  # built in worker processes, as a backfill
    recorded: Fingerprints = json.loads(FIXTURE.read_text())[version]
    engine = generated_shop(mysql_database_factory(), version)

    found = fingerprints(engine, version, tmp_path)

    engine.dispose()
    differ = sorted(key for key in recorded.keys() & found.keys() if recorded[key] != found[key])
    assert differ == [], f"{len(differ)} reports differ from the recorded ones: {', '.join(differ[:20])}"
    assert sorted(recorded.keys() - found.keys()) == [], "recorded orders no longer reported"
    assert sorted(found.keys() - recorded.keys()) == [], "orders reported that were not before"
    assert len(found) == len(recorded)
