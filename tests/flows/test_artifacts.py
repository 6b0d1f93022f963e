"""The artifacts a merchant reads: shop time, what is wrong and what to do, the orders still waiting.

And nothing in them is live: every value from the shop or SeQura renders as text in the Prefect UI.
"""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId

from flows.delivery_report import delivery_report
from flows.release import release
from schemas.reports import QuarantinedOrder, Stage
from tasks.inert import plain_text
from tasks.state.in_flight import StateLedger
from tasks.state.quarantine import record_quarantine
from tasks.state.runs import start_run
from tasks.state.store import open_state_store
from tasks.window import Window
from tests.cases import built_report
from tests.flows.conftest import Pipeline
from tests.rendered import IMG, JS_LINK, MARKDOWN, PIXEL, SCRIPT, artifact_markdown, live_parts
from tests.shops import PLACED, SINCE, UNTIL

WINDOW = {"since": SINCE.isoformat(), "until": UNTIL.isoformat()}


def artifacts_of_run(**parameters: Any) -> dict[str, Any]:
    """Run the delivery report; its artifacts' data by key."""
    return {key: data for key, (_, data, _) in published_by_run(**parameters).items()}


def published_by_run(**parameters: Any) -> dict[str, tuple[str, Any, str]]:
    """Run the delivery report; its artifacts' type, data and description by key."""
    state = delivery_report(**parameters, return_state=True)
    with get_client(sync_client=True) as client:
        found = client.read_artifacts(
            artifact_filter=ArtifactFilter(
                flow_run_id=ArtifactFilterFlowRunId(any_=[state.state_details.flow_run_id])
            )
        )
    return {
        artifact.key: (artifact.type, artifact.data, artifact.description or "")
        for artifact in found
        if artifact.key
    }


def as_shown(cell: object) -> str:
    """A table cell as a person reads it (its text and code): its lines joined by spaces, escapes undone."""
    return " ".join(
        "".join(
            child.content
            for token in MARKDOWN.parse(line)
            if token.type == "inline"
            for child in token.children or []
            if child.type in ("text", "text_special", "code_inline")
        )
        for line in str(cell).split("  \n")
    )


def live_in(published: dict[str, tuple[str, Any, str]]) -> dict[str, list[str]]:
    """What renders live in each artifact, as the UI renders its markdown, table cells and description."""
    live = {
        key: [part for text in [*artifact_markdown(kind, data), description] for part in live_parts(text)]
        for key, (kind, data, description) in published.items()
    }
    return {key: parts for key, parts in live.items() if parts}


def test_the_sent_table_says_when_each_order_shipped_in_shop_time_to_the_minute(pipeline: Pipeline) -> None:
    pipeline.shop.shipped_order("AAAAAAAAA")
    artifacts = artifacts_of_run(**WINDOW)
    [row] = json.loads(artifacts["delivery-report-sent-demo-merchant"])
    assert (row["Shipped at"], row["Shipped total"]) == ("2026-11-20 10:00", "17.45 EUR")
    assert list(row) == [
        "Order",
        "Order IDs",
        "State",
        "Shipped at",
        "Items",
        "Shipped total",
        "Still to ship",
    ]
    summary = artifacts["delivery-report-summary-demo-merchant"]
    assert summary.startswith("# Delivery report 2026-11-20 01:00 → 2026-11-21 01:00 Europe/Madrid\n")
    assert "orders shipped from 2026-11-20 01:00 to 2026-11-21 01:00 (Europe/Madrid)" in summary


def test_no_merchant_facing_artifact_shows_a_database_url(pipeline: Pipeline) -> None:
    pipeline.shop.shipped_order("AAAAAAAAA")
    artifacts = artifacts_of_run(**WINDOW)
    for key, data in artifacts.items():
        assert "sqlite:" not in str(data) and "mysql" not in str(data), key


def test_the_quarantine_table_says_what_is_wrong_and_what_to_do_apart(pipeline: Pipeline) -> None:
    id_order = pipeline.shop.shipped_order("AAAAAAAAA")
    pipeline.shop.set_order(id_order, total_paid_tax_incl=Decimal("99.00"))
    [row] = json.loads(artifacts_of_run(**WINDOW)["delivery-report-quarantine-demo-merchant"])
    assert as_shown(row["What is wrong"]).startswith("totals do not add up: items 17.45 EUR, order 99.00 EUR")
    assert as_shown(row["What to do"]) == "correct the order lines or totals in the back office"
    assert all(len(line) <= 34 for cell in row.values() for line in str(cell).split("  \n"))


def test_open_quarantine_lists_every_order_still_waiting_with_its_age_and_the_runs_that_retried_it(
    pipeline: Pipeline,
) -> None:
    id_order = pipeline.shop.shipped_order("AAAAAAAAA")
    pipeline.shop.set_order(id_order, total_paid_tax_incl=Decimal("99.00"))
    for _ in range(3):
        artifacts = artifacts_of_run(**WINDOW)
    [row] = json.loads(artifacts["open-quarantine-demo-merchant"])
    assert (row["Order"], row["Status"]) == ("AAAAAAAAA", "Quarantined")
    assert row["Waiting since"].endswith("  \n(under an hour)  \nretried by 2 runs")
    assert list(row) == ["Order", "Status", "Waiting since", "What is wrong", "What to do"]
    assert as_shown(row["What to do"]) == "correct the order lines or totals in the back office"
    pipeline.shop.set_order(id_order, total_paid_tax_incl=Decimal("17.45"))
    cleared = artifacts_of_run(**WINDOW)["open-quarantine-demo-merchant"]
    assert "No order is waiting" in cleared
    assert pipeline.accepted() == ["AAAAAAAAA"]


def test_no_artifact_renders_live_html_links_or_images_from_hostile_shop_data_or_sequra_answers(
    pipeline: Pipeline,
) -> None:
    shop = pipeline.shop
    buyer = shop.writer.add_customer(firstname=SCRIPT, lastname=PIXEL, email=IMG, at=PLACED)
    shop.shipped_order("AAAAAAAAA", id_customer=buyer)  # quarantined: its email is no email
    shop.shipped_order(JS_LINK)  # SeQura refuses it, naming it
    shop.shipped_order(IMG)  # sent
    pipeline.faults(reject_refs=[JS_LINK])
    first = published_by_run(**WINDOW)
    quarantine = json.loads(first["delivery-report-quarantine-demo-merchant"][1])
    reasons = " ".join(as_shown(row["What is wrong"]) for row in quarantine)
    assert IMG in reasons and JS_LINK in reasons  # the buyer's email, and SeQura's words naming the order
    assert pipeline.accepted() == [IMG]
    assert live_in(first) == {}
    assert live_in(published_by_run(**WINDOW)) == {}  # the open quarantine, from the state store


def test_a_run_that_stops_before_it_begins_says_why_without_rendering_the_hostile_parameter(
    pipeline: Pipeline,
) -> None:
    published = published_by_run(**WINDOW, merchant=IMG)
    [(_, why, _)] = published.values()
    assert "The run stopped before it began" in why
    assert live_in(published) == {}


def test_a_release_of_a_hostile_order_reference_says_what_it_did_as_text(pipeline: Pipeline) -> None:
    store = open_state_store(pipeline.state_url)
    start_run(store, "run-1", "demo_merchant", Window(SINCE, UNTIL), dry_run=False, flow_run_id=None)
    StateLedger(store, "run-1", "demo_merchant").sending([built_report(IMG)])
    held = QuarantinedOrder(IMG, IMG, (1,), Stage.LOAD, f"no answer for {JS_LINK}; check in SeQura")
    record_quarantine(store, "run-1", "demo_merchant", [held])
    store.dispose()
    state = release(order_refs=[IMG], return_state=True)
    with get_client(sync_client=True) as client:
        found = client.read_artifacts(
            artifact_filter=ArtifactFilter(
                flow_run_id=ArtifactFilterFlowRunId(any_=[state.state_details.flow_run_id])
            )
        )
    published = {a.key: (a.type, a.data, a.description or "") for a in found if a.key}
    assert IMG in plain_text(published["release-result-demo-merchant"][1])
    assert live_in(published) == {}
