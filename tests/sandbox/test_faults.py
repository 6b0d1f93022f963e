"""Fault injection: errors, rate limits, dropped connections, delays and rejected orders."""

from __future__ import annotations

import threading
import time

import pytest
import requests

from tests.sandbox.helpers import SandboxClient, make_order, make_report


def statuses(sandbox: SandboxClient, count: int) -> list[int]:
    """Post a valid report count times and return the statuses."""
    return [sandbox.post_report(make_report(make_order(f"R-{n}"))).status_code for n in range(count)]


def test_fail_next_two_gives_two_500s_then_success(sandbox: SandboxClient) -> None:
    sandbox.set_faults(fail_next=2)

    first = sandbox.post_report(make_report(make_order("R-0")))

    assert first.json() == {"errors": ["Internal server error"]}
    assert [first.status_code, *statuses(sandbox, 2)] == [500, 500, 204]
    assert [o["order_ref_1"] for o in sandbox.inspect("orders")] == ["R-1"]


def test_rate_limit_answers_429_with_retry_after(sandbox: SandboxClient) -> None:
    sandbox.set_faults(rate_limit_next=1, retry_after=7)

    response = sandbox.post_report(make_report(make_order()))

    assert response.status_code == 429
    assert response.headers["Retry-After"] == "7"
    assert response.json() == {"errors": ["Too many requests"]}
    assert statuses(sandbox, 1) == [204]


def test_drop_next_breaks_the_connection_without_an_answer(sandbox: SandboxClient) -> None:
    sandbox.set_faults(drop_next=1)

    with pytest.raises((requests.exceptions.ConnectionError, requests.exceptions.ChunkedEncodingError)):
        sandbox.post_report(make_report(make_order()))

    assert statuses(sandbox, 1) == [204]
    assert [entry["status"] for entry in sandbox.inspect("requests")] == [None, 204]


def test_faults_fire_only_after_auth_and_merchant_checks(sandbox: SandboxClient) -> None:
    sandbox.set_faults(fail_next=1)

    assert sandbox.post_report(make_report(make_order()), auth=None).status_code == 401
    assert sandbox.post_report(make_report(make_order()), merchant="intruder").status_code == 403
    assert sandbox.inspect("faults")["fail_next"] == 1
    assert statuses(sandbox, 2) == [500, 204]


def test_faults_fire_in_the_order_drop_rate_limit_fail(sandbox: SandboxClient) -> None:
    sandbox.set_faults(fail_next=1, rate_limit_next=1, drop_next=1)

    with pytest.raises((requests.exceptions.ConnectionError, requests.exceptions.ChunkedEncodingError)):
        sandbox.post_report(make_report(make_order()))

    assert statuses(sandbox, 3) == [429, 500, 204]


def test_fault_plan_shows_the_remaining_counters(sandbox: SandboxClient) -> None:
    sandbox.set_faults(fail_next=3, reject_refs=["X"])
    statuses(sandbox, 1)

    plan = sandbox.inspect("faults")

    assert plan["fail_next"] == 2
    assert plan["reject_refs"] == ["X"]
    assert plan["name_rejected_orders"] is True


def test_posting_a_fault_plan_replaces_the_previous_one(sandbox: SandboxClient) -> None:
    sandbox.set_faults(fail_next=5)
    sandbox.set_faults(rate_limit_next=1)

    assert statuses(sandbox, 2) == [429, 204]


def test_fault_plan_with_an_unknown_key_is_refused(sandbox: SandboxClient) -> None:
    response = requests.post(sandbox.url + "_sandbox/faults", json={"fail_nxt": 1})

    assert response.status_code == 422


def test_error_share_of_one_fails_every_request(sandbox: SandboxClient) -> None:
    sandbox.set_faults(error_share=1.0)

    assert statuses(sandbox, 3) == [500, 500, 500]


def test_error_share_with_a_seed_fails_the_same_requests_every_time(sandbox: SandboxClient) -> None:
    sandbox.set_faults(error_share=0.5, seed=42)
    first = statuses(sandbox, 20)
    sandbox.set_faults(error_share=0.5, seed=42)
    second = statuses(sandbox, 20)

    assert first == second
    assert set(first) == {204, 500}


def test_reject_refs_rejects_the_report_naming_exactly_those_orders(sandbox: SandboxClient) -> None:
    sandbox.set_faults(reject_refs=["B", "D", "NOT-IN-REPORT"])
    body = make_report(*(make_order(ref) for ref in "ABCD"))

    response = sandbox.post_report(body)

    assert response.status_code == 409
    errors = response.json()["errors"]
    assert [error.split(": ")[1] for error in errors] == ["order B", "order D"]
    assert all(error.startswith("Invalid data: order ") for error in errors)
    assert sandbox.inspect("orders") == []
    assert statuses(sandbox, 1) == [204]


def test_reject_refs_without_names_answers_only_invalid_data(sandbox: SandboxClient) -> None:
    sandbox.set_faults(reject_refs=["C"], name_rejected_orders=False)

    response = sandbox.post_report(make_report(*(make_order(ref) for ref in "ABCD")))

    assert response.status_code == 409
    assert response.json() == {"errors": ["Invalid data"]}
    assert sandbox.post_report(make_report(make_order("A"), make_order("B"))).status_code == 204


def test_unnamed_rejections_hide_which_order_failed_validation_too(sandbox: SandboxClient) -> None:
    sandbox.set_faults(name_rejected_orders=False)

    response = sandbox.post_report(make_report(make_order("A", state="lost")))

    assert response.json() == {"errors": ["Invalid data"]}


def test_delay_makes_a_client_with_a_shorter_timeout_time_out_and_nothing_is_recorded(
    sandbox: SandboxClient,
) -> None:
    sandbox.set_faults(delay_seconds=0.5)

    with pytest.raises(requests.exceptions.Timeout):
        sandbox.post_report(make_report(make_order()), timeout=0.1)

    deadline = time.monotonic() + 5
    while not sandbox.inspect("requests") and time.monotonic() < deadline:
        time.sleep(0.05)
    assert [entry["status"] for entry in sandbox.inspect("requests")] == [499]
    assert sandbox.inspect("orders") == []


def test_delayed_request_does_not_block_other_requests(sandbox: SandboxClient) -> None:
    sandbox.set_faults(delay_seconds=1.0)
    slow = threading.Thread(target=sandbox.post_report, args=(make_report(make_order("SLOW")),))
    slow.start()
    time.sleep(0.1)

    started = time.monotonic()
    assert sandbox.inspect("faults")["delay_seconds"] == 1.0
    elapsed = time.monotonic() - started
    slow.join()

    assert elapsed < 0.5
    assert [o["order_ref_1"] for o in sandbox.inspect("orders")] == ["SLOW"]


def test_reset_clears_records_log_and_faults(sandbox: SandboxClient) -> None:
    sandbox.post_report(make_report(make_order("R-1")))
    sandbox.put_order("R-1", {"order": {}})
    sandbox.set_faults(fail_next=4, reject_refs=["Z"])

    sandbox.reset()

    for name in ("delivery_reports", "orders", "order_updates", "requests"):
        assert sandbox.inspect(name) == [], name
    plan = sandbox.inspect("faults")
    assert (plan["fail_next"], plan["reject_refs"]) == (0, [])
    assert statuses(sandbox, 1) == [204]
