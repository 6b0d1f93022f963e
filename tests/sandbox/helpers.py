"""Payload builders and a small HTTP client for the sandbox tests."""

from __future__ import annotations

import copy
from typing import Any
from urllib.parse import quote

import requests

from sandbox.server import SandboxServer

MERCHANT = "demo_merchant"
PLATFORM = {
    "name": "PrestaShop",
    "version": "8.1.7",
    "uname": "Linux",
    "db_name": "mariadb",
    "db_version": "10.11",
}


def make_cart(*items: dict[str, Any], total: int | None = None) -> dict[str, Any]:
    """A cart holding items; the total is their sum unless given."""
    if not items:
        items = (
            product("SKU-1", "Camisa azul", quantity=2, price=1250),
            {"type": "handling", "reference": "shipping", "name": "Envío", "total_with_tax": 495},
            {"type": "discount", "reference": "SUMMER", "name": "Descuento verano", "total_with_tax": -500},
        )
    computed = sum(item["total_with_tax"] for item in items)
    return {
        "currency": "EUR",
        "gift": False,
        "order_total_with_tax": computed if total is None else total,
        "items": list(items),
    }


def empty_cart() -> dict[str, Any]:
    return {"currency": "EUR", "order_total_with_tax": 0, "items": []}


def product(reference: str, name: str, quantity: int = 1, price: int = 1000) -> dict[str, Any]:
    return {
        "type": "product",
        "reference": reference,
        "name": name,
        "quantity": quantity,
        "price_with_tax": price,
        "total_with_tax": quantity * price,
    }


def make_order(ref: str | int = "ORDER-1", **overrides: Any) -> dict[str, Any]:
    order: dict[str, Any] = {
        "state": "delivered",
        "sent_at": "2026-11-20T10:15:00+01:00",
        "merchant_reference": {"order_ref_1": ref, "order_ref_2": "1001"},
        "cart": make_cart(),
        "remaining_cart": empty_cart(),
        "delivery_method": {"name": "Correos Express", "home_delivery": True},
        "customer": {"email": "ana@example.com", "given_names": "Ana", "logged_in": True},
        "delivery_address": {
            "given_names": "Ana",
            "surnames": "García",
            "address_line_1": "Calle Mayor 1",
            "postal_code": "28013",
            "city": "Madrid",
            "country_code": "ES",
        },
        "trackings": [{"type": "postal", "tracking_number": "PQ123", "carrier": "Correos"}],
    }
    order.update(overrides)
    return order


def make_report(*orders: dict[str, Any], merchant: str = MERCHANT) -> dict[str, Any]:
    return {
        "delivery_report": {
            "merchant": {"id": merchant},
            "orders": list(orders),
            "statistics": {"orders": []},
            "platform": dict(PLATFORM),
        }
    }


def make_order_update(ref: str, merchant: str = MERCHANT, **overrides: Any) -> dict[str, Any]:
    order: dict[str, Any] = {
        "merchant": {"id": merchant},
        "merchant_reference": {"order_ref_1": ref},
        "shipped_cart": make_cart(),
        "unshipped_cart": empty_cart(),
        "platform": dict(PLATFORM),
    }
    order.update(overrides)
    return {"order": order}


def with_change(body: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    """A deep copy of body with the value at a dotted path (list indexes as numbers) replaced."""
    changed = copy.deepcopy(body)
    *parents, last = path.split(".")
    target: Any = changed
    for key in parents:
        target = target[int(key)] if isinstance(target, list) else target[key]
    target[int(last) if isinstance(target, list) else last] = value
    return changed


class SandboxClient:
    """Talks to a running sandbox over its real socket."""

    def __init__(self, server: SandboxServer) -> None:
        self.server = server
        self.url = server.url
        self.auth = (server.config.username, server.config.password)

    def post_report(self, body: Any, merchant: str | None = MERCHANT, **kwargs: Any) -> requests.Response:
        headers = {} if merchant is None else {"Sequra-Merchant-Id": merchant}
        kwargs.setdefault("auth", self.auth)
        return requests.post(self.url + "orders/delivery_reports", json=body, headers=headers, **kwargs)

    def put_order(
        self, path_ref: str, body: Any, merchant: str = MERCHANT, path_merchant: str = MERCHANT
    ) -> requests.Response:
        url = f"{self.url}merchants/{path_merchant}/orders/{quote(path_ref, safe='')}"
        return requests.put(url, json=body, headers={"Sequra-Merchant-Id": merchant}, auth=self.auth)

    def report(self, *refs: str) -> None:
        """Report each order in one delivery report, so that SeQura knows it and takes updates for it."""
        response = self.post_report(make_report(*(make_order(ref) for ref in refs)))
        assert response.status_code == 204, response.text

    def held(self, ref: str) -> requests.Response:
        """What the sandbox holds for one order, as SeQura would after every report and update."""
        return requests.get(f"{self.url}_sandbox/orders/{quote(ref, safe='')}", timeout=5)

    def inspect(self, name: str) -> Any:
        response = requests.get(f"{self.url}_sandbox/{name}")
        response.raise_for_status()
        return response.json()

    def set_faults(self, **plan: Any) -> dict[str, Any]:
        response = requests.post(self.url + "_sandbox/faults", json=plan)
        response.raise_for_status()
        return response.json()

    def reset(self) -> None:
        requests.post(self.url + "_sandbox/reset").raise_for_status()

    def set_payouts(self, **settings: Any) -> dict[str, Any]:
        """Set the payout clock, rules and faults (POST /_sandbox/payouts)."""
        response = requests.post(self.url + "_sandbox/payouts", json=settings)
        response.raise_for_status()
        return response.json()

    def get_api(self, path: str, merchant: str = MERCHANT, **kwargs: Any) -> requests.Response:
        """GET an API path (without its leading slash) as the merchant, with the configured credentials."""
        kwargs.setdefault("auth", self.auth)
        return requests.get(self.url + path, headers={"Sequra-Merchant-Id": merchant}, timeout=5, **kwargs)
