"""The SandboxServer context manager: port, URL, shared state and clean shutdown."""

from __future__ import annotations

import pytest
import requests

from sandbox.config import SandboxConfig
from sandbox.server import SandboxServer
from tests.sandbox.helpers import make_order, make_report


def test_server_picks_a_free_port_and_stops_on_exit() -> None:
    config = SandboxConfig(username="u", password="p", merchants=("shop_a",))
    with SandboxServer(port=0, config=config) as server:
        assert server.port > 0
        assert server.url == f"http://127.0.0.1:{server.port}/"
        response = requests.post(
            server.url + "orders/delivery_reports",
            json=make_report(make_order("S-1"), merchant="shop_a"),
            headers={"Sequra-Merchant-Id": "shop_a"},
            auth=("u", "p"),
        )
        assert response.status_code == 204
        assert [order["order_ref_1"] for order in server.state.orders()] == ["S-1"]

    with pytest.raises(requests.exceptions.ConnectionError):
        requests.get(server.url + "_sandbox/orders", timeout=2)


def test_two_servers_run_side_by_side_with_separate_state() -> None:
    with SandboxServer() as first, SandboxServer() as second:
        assert first.port != second.port
        first.state.log_request("GET", "/probe", 200)
        assert len(requests.get(first.url + "_sandbox/requests").json()) == 1
        assert requests.get(second.url + "_sandbox/requests").json() == []
