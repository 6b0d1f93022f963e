"""The sandbox web app: a local double of SeQura's delivery report, order update and Disbursement API.

Besides the API endpoints it serves `/_sandbox/` endpoints, without auth, to read what it accepted, to plan
faults (errors, rate limits, dropped connections, delays, rejected orders), to move the payout clock and plan
payout faults (`/_sandbox/payouts`), and a file of
buyer data SeQura corrected, with auth, for reconciliations (`/_sandbox/corrections`).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import csv
import gc
import io
import json
import random
import secrets
import threading
from collections.abc import Callable
from contextlib import suppress
from datetime import UTC, datetime
from enum import Enum
from functools import partial
from typing import Literal

import orjson
from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse, PlainTextResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.requests import ClientDisconnect
from starlette.types import Receive, Scope, Send

from sandbox.config import SandboxConfig
from sandbox.disbursements import PayoutSettings, ShippedTotal, disbursements, listed
from sandbox.validation import INVALID, order_ref_1, validate_delivery_report, validate_order_update

MERCHANT_HEADER = "Sequra-Merchant-Id"
ACCESS_DENIED = "HTTP Basic: Access denied."
NO_ACCESS = "You do not have access to this URL"
# Status logged (nginx's convention) when the client left, e.g. timed out during a delay, before it was read.
CLIENT_CLOSED_REQUEST = 499
# A body's bytes with every digit as 0 and every other byte as a space, to find runs of digits fast.
DIGITS_AS_ZEROS = bytes.maketrans(bytes(range(256)), bytes(48 if 48 <= b <= 57 else 32 for b in range(256)))
# As many digits in a row as an integer orjson would read as a float needs (beyond 64 bits), or more.
LONG_DIGITS = b"0" * 19

Record = dict[str, object]
# What SeQura holds for an order, from the keys of a delivery report's order and of an order update.
HELD_KEYS = ("delivery_method", "delivery_address", "invoice_address", "customer", "trackings")
HELD_FROM_REPORT = {
    "merchant_reference": "merchant_reference",
    "state": "state",
    "cart": "shipped_cart",
    "remaining_cart": "unshipped_cart",
    **{key: key for key in HELD_KEYS},
}
HELD_FROM_UPDATE = {
    "merchant_reference": "merchant_reference",
    "shipped_cart": "shipped_cart",
    "unshipped_cart": "unshipped_cart",
    **{key: key for key in HELD_KEYS},
}
Handler = Callable[[str, object], Response]


class FaultPlan(BaseModel):
    """The faults the sandbox injects into API requests; the *_next counters count down as they fire."""

    model_config = ConfigDict(extra="forbid")

    fail_next: int = Field(0, ge=0)
    rate_limit_next: int = Field(0, ge=0)
    retry_after: int = Field(1, ge=0)
    drop_next: int = Field(0, ge=0)
    lose_answer_next: int = Field(0, ge=0)  # process the request, then drop the connection unanswered
    slow_answer_next: int = Field(0, ge=0)  # process the request, then answer after slow_answer_seconds
    slow_answer_seconds: float = Field(5.0, ge=0)
    delay_seconds: float = Field(0.0, ge=0)
    error_share: float = Field(0.0, ge=0, le=1)
    # the faults error_share draws from, evenly: fail (500), rate_limit (429), drop, lose_answer, slow_answer
    error_kinds: list[Literal["fail", "rate_limit", "drop", "lose_answer", "slow_answer"]] = ["fail"]
    seed: int | None = None
    reject_refs: list[str | int] = Field(default_factory=list)
    name_rejected_orders: bool = True


class Checkouts(BaseModel):
    """Orders SeQura knows from checkout (order_ref_1), for one merchant."""

    model_config = ConfigDict(extra="forbid")

    merchant: str
    order_refs: list[str | int]


class Fault(Enum):
    """A fault injected instead of the normal answer."""

    DROP = "drop"
    LOSE_ANSWER = "lose_answer"
    SLOW_ANSWER = "slow_answer"
    RATE_LIMIT = "rate_limit"
    FAIL = "fail"


def _now() -> str:
    """Return the current UTC time in ISO 8601."""
    return datetime.now(UTC).isoformat()


class SandboxState:
    """What the sandbox accepted and logged, and its fault plan; safe to use from several threads."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._reports: list[Record] = []
        self._orders: list[Record] = []
        self._order_updates: list[Record] = []
        self._held: dict[tuple[str, str], Record] = {}
        self._requests: list[Record] = []
        self._faults = FaultPlan()
        self._random = random.Random()
        self._corrections: list[object] = []
        self._shipped_totals: list[ShippedTotal] = []
        self._payouts = PayoutSettings()
        # a sandbox of its own process (sequra-etl sandbox) sets this: see record_report
        self.freeze_held = False

    def set_corrections(self, records: list[object]) -> None:
        """Replace the corrected buyer data the sandbox serves, records kept as given (malformed ones too)."""
        with self._lock:
            self._corrections = list(records)

    def corrections(self) -> list[object]:
        """The corrected buyer data the sandbox serves."""
        with self._lock:
            return list(self._corrections)

    def record_report(self, merchant: str, body: object, orders: list[object]) -> None:
        """Store an accepted delivery report and each of its orders."""
        received_at = _now()
        with self._lock:
            self._reports.append({"received_at": received_at, "merchant": merchant, "body": body})
            self._orders.extend(_order_record(merchant, order, received_at) for order in orders)
            for order in orders:
                self._hold(merchant, order, HELD_FROM_REPORT, received_at, "delivery_reports")
        if self.freeze_held:  # held until reset: the collector's full passes need not walk them again
            gc.freeze()

    def check_out(self, merchant: str, order_refs: list[str]) -> None:
        """Know these orders as SeQura does from checkout, before any report or update of them."""
        with self._lock:
            for ref in order_refs:
                self._held.setdefault(
                    (merchant, ref),
                    {
                        "merchant": merchant,
                        "order_ref_1": ref,
                        "state": "approved",
                        "delivery_reports": 0,
                        "order_updates": 0,
                    },
                )

    def knows(self, merchant: str, order_ref: str) -> bool:
        """Tell whether a delivery report of this merchant has carried the order."""
        with self._lock:
            return (merchant, order_ref) in self._held

    def record_order_update(self, merchant: str, order: object) -> None:
        """Store an accepted order update and apply it to the state held for the order."""
        received_at = _now()
        with self._lock:
            self._order_updates.append(_order_record(merchant, order, received_at))
            held = self._hold(merchant, order, HELD_FROM_UPDATE, received_at, "order_updates")
            held["state"] = _state_after_update(held)

    def _hold(
        self, merchant: str, order: object, keys: dict[str, str], received_at: str, counter: str
    ) -> Record:
        """Apply an accepted report or update to the held order, log its shipped total (lock held)."""
        assert isinstance(order, dict)
        ref = order_ref_1(order)
        assert ref is not None
        held = self._held.setdefault(
            (merchant, ref),
            {"merchant": merchant, "order_ref_1": ref, "delivery_reports": 0, "order_updates": 0},
        )
        for key, held_as in keys.items():
            if key in order:
                held[held_as] = order[key]
        held[counter] = int(held[counter]) + 1  # type: ignore[call-overload]
        held["updated_at"] = received_at
        shipped = held.get("shipped_cart")
        total = _dig(shipped, "order_total_with_tax")
        if isinstance(total, int) and isinstance(shipped, dict):
            self._shipped_totals.append(
                ShippedTotal(merchant, ref, total, str(shipped.get("currency")), self._payouts.clock())
            )
        return held

    def payout_settings(self) -> PayoutSettings:
        """Return a copy of the payout clock, rules and faults."""
        with self._lock:
            return self._payouts.model_copy(deep=True)

    def set_payout_settings(self, settings: PayoutSettings) -> None:
        """Replace the payout clock, rules and faults."""
        with self._lock:
            self._payouts = settings.model_copy(deep=True)

    def disbursements(self, merchant: str) -> list[Record]:
        """The merchant's disbursements issued by the sandbox's clock, newest first, with their lines."""
        with self._lock:
            history = list(self._shipped_totals)
            settings = self._payouts.model_copy(deep=True)
        return disbursements(merchant, history, settings)

    def held_order(self, merchant: str | None, order_ref: str) -> Record | None:
        """What SeQura holds for an order after every report and update it accepted, or None."""
        with self._lock:
            found = [
                dict(held)
                for (who, ref), held in self._held.items()
                if ref == order_ref and merchant in (None, who)
            ]
        return found[0] if len(found) == 1 else None

    def log_request(self, method: str, path: str, status: int | None) -> None:
        """Log an API request with its answer's status; None means dropped, 499 means the client left."""
        with self._lock:
            self._requests.append({"method": method, "path": path, "status": status, "received_at": _now()})

    def reports(self) -> list[Record]:
        """Return the accepted delivery reports, oldest first."""
        with self._lock:
            return list(self._reports)

    def orders(self) -> list[Record]:
        """Return every order accepted through delivery reports, oldest first, repeats included."""
        with self._lock:
            return list(self._orders)

    def order_updates(self) -> list[Record]:
        """Return the accepted order updates, oldest first."""
        with self._lock:
            return list(self._order_updates)

    def requests(self) -> list[Record]:
        """Return the log of API requests, oldest first."""
        with self._lock:
            return list(self._requests)

    def fault_plan(self) -> FaultPlan:
        """Return a copy of the current fault plan."""
        with self._lock:
            return self._faults.model_copy(deep=True)

    def set_fault_plan(self, plan: FaultPlan) -> None:
        """Replace the fault plan and reseed the error_share draws."""
        with self._lock:
            self._faults = plan.model_copy(deep=True)
            self._random = random.Random(plan.seed)

    def draw_fault(self) -> tuple[Fault | None, FaultPlan]:
        """Pick the fault for the next API request: drop, lost or slow answer, rate limit, fail, share."""
        with self._lock:
            plan = self._faults
            fault = None
            if plan.drop_next:
                plan.drop_next -= 1
                fault = Fault.DROP
            elif plan.lose_answer_next:
                plan.lose_answer_next -= 1
                fault = Fault.LOSE_ANSWER
            elif plan.slow_answer_next:
                plan.slow_answer_next -= 1
                fault = Fault.SLOW_ANSWER
            elif plan.rate_limit_next:
                plan.rate_limit_next -= 1
                fault = Fault.RATE_LIMIT
            elif plan.fail_next:
                plan.fail_next -= 1
                fault = Fault.FAIL
            elif self._random.random() < plan.error_share:
                fault = Fault(self._random.choice(plan.error_kinds))
            return fault, plan.model_copy(deep=True)

    def reset(self) -> None:
        """Forget every record, the request log, the fault plan and the payout settings."""
        with self._lock:
            self._reports.clear()
            self._orders.clear()
            self._order_updates.clear()
            self._held.clear()
            self._requests.clear()
            self._corrections.clear()
            self._shipped_totals.clear()
        self.set_fault_plan(FaultPlan())
        self.set_payout_settings(PayoutSettings())


def _state_after_update(held: Record) -> object:
    """The order's state once an update applied: cancelled with both carts empty, shipped once items ship."""
    carts = [held.get("shipped_cart"), held.get("unshipped_cart")]
    if all(isinstance(cart, dict) and not cart.get("items") for cart in carts):
        return "cancelled"
    shipped = held.get("shipped_cart")
    if (
        held.get("state") in (None, "approved", "cancelled")
        and isinstance(shipped, dict)
        and shipped.get("items")
    ):
        return "shipped"
    return held.get("state")


def _order_record(merchant: str, order: object, received_at: str) -> Record:
    """Describe one accepted order for the inspection endpoints; order_ref_1 is always a string."""
    return {
        "merchant": merchant,
        "order_ref_1": order_ref_1(order),
        "received_at": received_at,
        "order": order,
    }


class DroppedConnection(Response):
    """An answer that announces a body and never sends it, so the server closes the connection."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Send the status line and headers only; the body promised by content-length never comes."""
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"1")]})


def _errors(status: int, *errors: str, headers: dict[str, str] | None = None) -> JSONResponse:
    """Answer with SeQura's error body `{"errors": [...]}`."""
    return JSONResponse({"errors": list(errors)}, status_code=status, headers=headers)


def _access_denied() -> PlainTextResponse:
    """Answer 401 in plain text, as SeQura does."""
    return PlainTextResponse(
        ACCESS_DENIED, status_code=401, headers={"WWW-Authenticate": 'Basic realm="SeQura"'}
    )


def _authorized(authorization: str | None, config: SandboxConfig) -> bool:
    """Tell whether an Authorization header carries the configured Basic credentials."""
    scheme, _, encoded = (authorization or "").partition(" ")
    try:
        decoded = base64.b64decode(encoded, validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        return False
    username, _, password = decoded.partition(":")
    return (
        scheme.lower() == "basic"
        and secrets.compare_digest(username.encode(), config.username.encode())
        and secrets.compare_digest(password.encode(), config.password.encode())
    )


def _fault_response(fault: Fault, plan: FaultPlan) -> Response:
    """Answer a request with an injected fault."""
    if fault is Fault.DROP:
        return DroppedConnection()
    if fault is Fault.RATE_LIMIT:
        return _errors(429, "Too many requests", headers={"Retry-After": str(plan.retry_after)})
    return _errors(500, "Internal server error")


def _refuse_constant(name: str) -> object:
    """Refuse NaN and Infinity, which are not JSON."""
    raise ValueError(f"{name} is not valid JSON")


def _decoded(raw: bytes) -> object:
    """The JSON body as json.loads reads it (NaN and Infinity refused), by orjson when it can.

    orjson reads plain UTF-8 JSON several times faster. A body with a run of 19 digits or more (orjson
    reads an integer beyond 64 bits as a float) or one orjson refuses (a lone surrogate, UTF-16, NaN, deep
    nesting) is read by json.loads, which answers it as it always did.
    """
    if LONG_DIGITS not in raw.translate(DIGITS_AS_ZEROS):
        with suppress(orjson.JSONDecodeError):
            return orjson.loads(raw)
    return json.loads(raw, parse_constant=_refuse_constant)


async def _answer_api(
    request: Request, config: SandboxConfig, state: SandboxState, handle: Handler
) -> Response:
    """Check auth, merchant and faults, decode the JSON body and pass it to handle."""
    if not _authorized(request.headers.get("Authorization"), config):
        return _access_denied()
    merchant = request.headers.get(MERCHANT_HEADER)
    if merchant not in config.merchants:
        return _errors(403, NO_ACCESS)
    fault, plan = state.draw_fault()
    if fault not in (None, Fault.LOSE_ANSWER, Fault.SLOW_ANSWER):
        return _fault_response(fault, plan)
    await asyncio.sleep(plan.delay_seconds)
    try:
        raw = await request.body()
        body = None if request.method == "GET" else _decoded(raw)
    except ClientDisconnect:
        return Response(status_code=CLIENT_CLOSED_REQUEST)
    except ValueError:
        return _errors(400, "Malformed JSON")
    answer = handle(merchant, body)
    if fault is Fault.SLOW_ANSWER:
        await asyncio.sleep(plan.slow_answer_seconds)
    return DroppedConnection() if fault is Fault.LOSE_ANSWER else answer


async def _serve_api(
    request: Request, config: SandboxConfig, state: SandboxState, handle: Handler
) -> Response:
    """Answer an API request and log it."""
    response = await _answer_api(request, config, state, handle)
    status = None if isinstance(response, DroppedConnection) else response.status_code
    state.log_request(request.method, request.url.path, status)
    return response


def _dig(value: object, *keys: str) -> object:
    """Return value[key1][key2]..., or None when a level is missing or not an object."""
    for key in keys:
        value = value.get(key) if isinstance(value, dict) else None
    return value


def _report_orders(body: object) -> list[object]:
    """Return the orders of a delivery report body, or [] when it has no order list."""
    orders = _dig(body, "delivery_report", "orders")
    return orders if isinstance(orders, list) else []


def _rejected_by_plan(orders: list[object], plan: FaultPlan) -> list[str]:
    """Return one error per reported order that the fault plan rejects."""
    rejected = {str(ref) for ref in plan.reject_refs}
    refs = dict.fromkeys(order_ref_1(order) for order in orders)
    return [
        f"{INVALID}: order {ref}: rejected by the sandbox (reject_refs)" for ref in refs if ref in rejected
    ]


def _receive_report(state: SandboxState, merchant: str, body: object) -> Response:
    """Validate a delivery report and record it when valid."""
    if _dig(body, "delivery_report", "merchant", "id") not in (None, merchant):
        return _errors(403, NO_ACCESS)
    plan = state.fault_plan()
    orders = _report_orders(body)
    errors = validate_delivery_report(body) + _rejected_by_plan(orders, plan)
    if errors:
        return _errors(409, *errors) if plan.name_rejected_orders else _errors(409, INVALID)
    state.record_report(merchant, body, orders)
    return Response(status_code=204)


def _receive_order_update(
    state: SandboxState, path_merchant: str, order_ref: str, merchant: str, body: object
) -> Response:
    """Validate an order update for the order in the URL and record it when valid."""
    if path_merchant != merchant or _dig(body, "order", "merchant", "id") not in (None, merchant):
        return _errors(403, NO_ACCESS)
    if not state.knows(merchant, order_ref):
        return _errors(404, f"Order {order_ref} not found for merchant {merchant}")
    errors = validate_order_update(body, order_ref) + _rejected_by_plan(
        [_dig(body, "order")], state.fault_plan()
    )
    if errors:
        return _errors(409, *errors)
    state.record_order_update(merchant, _dig(body, "order"))
    return JSONResponse({})


def _list_disbursements(state: SandboxState, path_merchant: str, merchant: str, body: object) -> Response:
    """The merchant's disbursements, newest first, as SeQura's list call answers them."""
    if path_merchant != merchant:
        return _errors(403, NO_ACCESS)
    return JSONResponse([{"disbursement": listed(found)} for found in state.disbursements(merchant)])


def _show_disbursement(
    state: SandboxState, path_merchant: str, disbursement_id: str, merchant: str, body: object
) -> Response:
    """One disbursement with its per-order lines, or 404 when the merchant has none with this id."""
    if path_merchant != merchant:
        return _errors(403, NO_ACCESS)
    path = f"/merchants/{merchant}/disbursements/{disbursement_id}"
    found = [disbursement for disbursement in state.disbursements(merchant) if disbursement["path"] == path]
    if not found:
        return _errors(404, f"Disbursement {disbursement_id} not found for merchant {merchant}")
    return JSONResponse({"disbursement": found[0]})


def _flattened(record: object) -> dict[str, object]:
    """A correction record with nested keys flattened (`delivery_address.postal_code`), for CSV."""
    if not isinstance(record, dict):
        return {}
    flat: dict[str, object] = {}
    for key, value in record.items():
        if isinstance(value, dict):
            flat |= {f"{key}.{inner}": item for inner, item in value.items()}
        else:
            flat[key] = value
    return flat


def corrections_body(records: list[object], file_format: str) -> Response:
    """The corrections as JSON Lines, a JSON array or CSV."""
    if file_format == "json":
        return JSONResponse(records)
    if file_format == "csv":
        rows = [_flattened(record) for record in records]
        columns = list(dict.fromkeys(column for row in rows for column in row))
        out = io.StringIO()
        writer = csv.DictWriter(out, columns)
        writer.writeheader()
        writer.writerows(rows)
        return PlainTextResponse(out.getvalue(), media_type="text/csv")
    lines = "".join(json.dumps(record, ensure_ascii=False) + "\n" for record in records)
    return PlainTextResponse(lines, media_type="application/jsonl")


def create_app(config: SandboxConfig) -> FastAPI:
    """Build the sandbox app; its SandboxState is at `app.state.sandbox`."""
    state = SandboxState()
    app = FastAPI(title="SeQura sandbox", description=__doc__)
    app.state.sandbox = state

    @app.post("/orders/delivery_reports")
    async def post_delivery_report(request: Request) -> Response:
        """Receive a delivery report: 204 when accepted, 409 with the errors otherwise."""
        return await _serve_api(request, config, state, partial(_receive_report, state))

    @app.put("/merchants/{merchant}/orders/{order_ref:path}")
    async def put_order(request: Request, merchant: str, order_ref: str) -> Response:
        """Receive an order update: 200 when accepted, 404 for an order never reported, 409 if invalid."""
        return await _serve_api(
            request, config, state, partial(_receive_order_update, state, merchant, order_ref)
        )

    @app.get("/merchants/{merchant}/disbursements")
    async def get_disbursements(request: Request, merchant: str) -> Response:
        """List the merchant's disbursements issued by the sandbox's clock, newest first."""
        return await _serve_api(request, config, state, partial(_list_disbursements, state, merchant))

    @app.get("/merchants/{merchant}/disbursements/{disbursement_id}")
    async def get_disbursement(request: Request, merchant: str, disbursement_id: str) -> Response:
        """Show one disbursement with its per-order lines; 404 for an id the merchant does not have."""
        return await _serve_api(
            request, config, state, partial(_show_disbursement, state, merchant, disbursement_id)
        )

    @app.get("/_sandbox/delivery_reports")
    def get_delivery_reports() -> JSONResponse:
        """List the accepted delivery reports as received."""
        return JSONResponse(state.reports())

    @app.get("/_sandbox/orders")
    def get_orders() -> JSONResponse:
        """List every order accepted through delivery reports, in arrival order."""
        return JSONResponse(state.orders())

    @app.get("/_sandbox/orders/{order_ref:path}")
    def get_held_order(order_ref: str, merchant: str | None = None) -> JSONResponse:
        """What SeQura holds for one order after every report and update: carts, addresses, customer."""
        held = state.held_order(merchant, order_ref)
        if held is None:
            return _errors(404, f"Order {order_ref} not found")
        return JSONResponse(held)

    @app.post("/_sandbox/checkouts")
    def post_checkouts(checkouts: Checkouts) -> JSONResponse:
        """Know orders as checked out with SeQura, so that updates of them are taken before any report."""
        state.check_out(checkouts.merchant, [str(ref) for ref in checkouts.order_refs])
        return JSONResponse({})

    @app.get("/_sandbox/order_updates")
    def get_order_updates() -> JSONResponse:
        """List the accepted order updates, in arrival order."""
        return JSONResponse(state.order_updates())

    @app.get("/_sandbox/requests")
    def get_requests() -> JSONResponse:
        """List every API request with its status (null: dropped on purpose, 499: the client left first)."""
        return JSONResponse(state.requests())

    @app.get("/_sandbox/faults")
    def get_faults() -> FaultPlan:
        """Show the current fault plan with its remaining counters."""
        return state.fault_plan()

    @app.post("/_sandbox/faults")
    def post_faults(plan: FaultPlan) -> FaultPlan:
        """Replace the fault plan."""
        state.set_fault_plan(plan)
        return state.fault_plan()

    @app.get("/_sandbox/payouts")
    def get_payouts() -> PayoutSettings:
        """Show the payout clock, rules and faults."""
        return state.payout_settings()

    @app.post("/_sandbox/payouts")
    def post_payouts(settings: PayoutSettings) -> PayoutSettings:
        """Replace the payout clock (`now`), rules (delay_days, pay_after_days) and faults."""
        state.set_payout_settings(settings)
        return state.payout_settings()

    @app.get("/_sandbox/corrections")
    def get_corrections(request: Request, format: Literal["jsonl", "json", "csv"] = "jsonl") -> Response:
        """The buyer data SeQura corrected, as a merchant downloads it (Basic auth, like the API)."""
        if not _authorized(request.headers.get("authorization"), config):
            return _access_denied()
        return corrections_body(state.corrections(), format)

    @app.post("/_sandbox/corrections")
    async def post_corrections(request: Request) -> JSONResponse:
        """Set the corrected buyer data to serve: a JSON array of records, kept as given."""
        try:
            records = await request.json()
        except ValueError:  # not JSON (json.JSONDecodeError), or not UTF-8 (UnicodeDecodeError)
            records = None
        if not isinstance(records, list):
            return _errors(422, "send a JSON array of correction records")
        state.set_corrections(records)
        return JSONResponse({"corrections": len(records)})

    @app.post("/_sandbox/reset")
    def post_reset() -> JSONResponse:
        """Forget every record, the request log, the fault plan and the payout settings."""
        state.reset()
        return JSONResponse({})

    return app
