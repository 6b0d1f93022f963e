"""The artifacts a merchant reads: shop time, what is wrong and what to do, the orders still waiting."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId

from flows.delivery_report import delivery_report
from tests.flows.conftest import Pipeline
from tests.shops import SINCE, UNTIL

WINDOW = {"since": SINCE.isoformat(), "until": UNTIL.isoformat()}


def artifacts_of_run(**parameters: Any) -> dict[str, Any]:
    """Run the delivery report; its artifacts' data by key."""
    state = delivery_report(**parameters, return_state=True)
    with get_client(sync_client=True) as client:
        found = client.read_artifacts(
            artifact_filter=ArtifactFilter(
                flow_run_id=ArtifactFilterFlowRunId(any_=[state.state_details.flow_run_id])
            )
        )
    return {artifact.key: artifact.data for artifact in found}


def test_the_sent_table_says_when_each_order_shipped_in_shop_time_to_the_minute(pipeline: Pipeline) -> None:
    pipeline.shop.shipped_order("AAAAAAAAA")
    artifacts = artifacts_of_run(**WINDOW)
    [row] = json.loads(artifacts["delivery-report-sent-demo-merchant"])
    assert (row["shipped_at"], row["shipped_total"]) == ("2026-11-20 10:00", "17.45 EUR")
    assert "sent_at" not in row
    summary = artifacts["delivery-report-summary-demo-merchant"]
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
    assert row["what_is_wrong"].startswith("totals do not add up: items 17.45 EUR, order 99.00 EUR")
    assert row["what_to_do"] == "correct the order lines or totals in the back office"


def test_open_quarantine_lists_every_order_still_waiting_with_its_age_and_the_runs_that_retried_it(
    pipeline: Pipeline,
) -> None:
    id_order = pipeline.shop.shipped_order("AAAAAAAAA")
    pipeline.shop.set_order(id_order, total_paid_tax_incl=Decimal("99.00"))
    for _ in range(3):
        artifacts = artifacts_of_run(**WINDOW)
    [row] = json.loads(artifacts["open-quarantine-demo-merchant"])
    assert (row["order_ref_1"], row["age"], row["runs_retried"]) == ("AAAAAAAAA", "under an hour", 2)
    assert row["what_to_do"] == "correct the order lines or totals in the back office"
    pipeline.shop.set_order(id_order, total_paid_tax_incl=Decimal("17.45"))
    cleared = artifacts_of_run(**WINDOW)["open-quarantine-demo-merchant"]
    assert "No order is waiting" in cleared
    assert pipeline.accepted() == ["AAAAAAAAA"]
