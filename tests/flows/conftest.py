"""Flow tests: one Prefect test server for the session, a shop, the sandbox and a state store per test."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import orjson
import pytest
import requests

from sandbox.server import SandboxServer
from schemas.prestashop import shop_tables
from tests.shops import Shop, seeded_shop, sqlite_shop


@pytest.fixture(autouse=True)
def _flows_run_on_the_test_server(request: pytest.FixtureRequest) -> None:
    """A test that runs a flow (it uses the pipeline, or is marked `flow`) runs it on the test server.

    A test that only parses or checks starts none.
    """
    if "pipeline" in request.fixturenames or request.node.get_closest_marker("flow") is not None:
        request.getfixturevalue("prefect_harness")


@dataclass
class Pipeline:
    """Everything a delivery-report run touches, wired through the environment as in production."""

    shop: Shop
    sandbox: SandboxServer
    state_url: str

    def accepted(self) -> list[str]:
        """order_ref_1 of every order the sandbox accepted, in arrival order (repeats included)."""
        return [
            o["order_ref_1"] for o in requests.get(self.sandbox.url + "_sandbox/orders", timeout=5).json()
        ]

    def held(self, order_ref_1: str) -> dict:
        """What the sandbox holds for one order after every report and update, as SeQura would."""
        response = requests.get(f"{self.sandbox.url}_sandbox/orders/{quote(order_ref_1, safe='')}", timeout=5)
        response.raise_for_status()
        return response.json()

    def reported_by_module(self, reference: str) -> None:
        """Let the sandbox receive the order as the PHP module reported it, before this project ran."""
        report = orjson.loads(self.shop.report(reference).payload)
        body = {
            "delivery_report": {
                "merchant": {"id": "demo_merchant"},
                "orders": [report],
                "platform": {
                    "name": "PrestaShop",
                    "version": "8.0",
                    "uname": "x",
                    "db_name": "x",
                    "db_version": "x",
                },
            }
        }
        requests.post(
            self.sandbox.url + "orders/delivery_reports",
            json=body,
            auth=("demo", "demo-secret"),
            headers={"Sequra-Merchant-Id": "demo_merchant"},
            timeout=5,
        ).raise_for_status()

    def faults(self, **plan: object) -> None:
        """Plan the sandbox's next faults."""
        requests.post(self.sandbox.url + "_sandbox/faults", json=plan, timeout=5).raise_for_status()


@pytest.fixture
def pipeline(
    request: pytest.FixtureRequest,
    tmp_path: Path,
    sandbox_server: SandboxServer,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[Pipeline]:
    """A fresh shop and state store, the sandbox reset, and the settings pointing at them.

    The shop is SQLite, or MariaDB on the real PrestaShop 8.0 DDL when the test parametrizes it as "mysql".
    """
    requests.post(sandbox_server.url + "_sandbox/reset", timeout=5).raise_for_status()
    if getattr(request, "param", "sqlite") == "mysql":
        shop = seeded_shop(
            request.getfixturevalue("mysql_shop_engine_factory")("8.0", "ps_"), shop_tables("ps_")
        )
    else:
        shop = sqlite_shop(tmp_path / "shop.sqlite")
    state_url = f"sqlite:///{tmp_path / 'state.sqlite'}"
    for name, value in {
        "SHOP_DB_URL": shop.engine.url.render_as_string(hide_password=False),
        "STATE_DB_URL": state_url,
        "SEQURA_API_URL": sandbox_server.url,
        "SEQURA_USERNAME": "demo",
        "SEQURA_PASSWORD": "demo-secret",
        "SEQURA_MERCHANT_ID": "demo_merchant",
        "SEQURA_BACKOFF_SECONDS": "0.01",
    }.items():
        monkeypatch.setenv(name, value)
    yield Pipeline(shop, sandbox_server, state_url)
    shop.engine.dispose()
