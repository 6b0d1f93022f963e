"""Reading SeQura's disbursements: each one fetched once and kept, with its lines and raw detail."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import requests
from sqlalchemy import func, select

from sandbox.server import SandboxServer
from schemas import state
from tasks.payouts.read import DisbursementsRead, read_new_disbursements
from tasks.resources import RunResources
from tasks.window import Window
from tests.runs import run_once, settings_for
from tests.shops import SINCE, UNTIL, Shop

pytestmark = pytest.mark.mysql

REPORTED_ON = "2026-11-23T10:00:00"  # the sandbox's clock when it accepts the reports: a Monday
PAID_BY = "2026-12-28T10:00:00"  # five weeks on: the week of the reports has been paid


def test_every_disbursement_is_read_once_and_kept_with_its_lines_and_raw_detail(
    mysql_shop: Shop, sandbox_server: SandboxServer, tmp_path: Path
) -> None:
    sandbox = sandbox_server.url
    requests.post(sandbox + "_sandbox/reset", timeout=5).raise_for_status()
    for reference in ("PAIDORD01", "PAIDORD02", "PAIDORD03"):
        mysql_shop.shipped_order(reference)
    settings = settings_for(
        mysql_shop.engine, f"sqlite:///{tmp_path / 'state.sqlite'}", SEQURA_API_URL=sandbox
    )
    requests.post(sandbox + "_sandbox/payouts", json={"now": REPORTED_ON}, timeout=5).raise_for_status()
    assert run_once(settings, Window(SINCE, UNTIL, continues=False)).counts.sent == 3
    requests.post(sandbox + "_sandbox/payouts", json={"now": PAID_BY}, timeout=5).raise_for_status()

    with RunResources.open(settings) as resources:
        first = read_new_disbursements(resources)
        again = read_new_disbursements(resources)
        with resources.store.engine.connect() as conn:
            kept = conn.execute(select(state.disbursements.c.reference, state.disbursements.c.detail)).all()
            lines = conn.execute(
                select(
                    state.disbursement_lines.c.order_ref_1,
                    func.sum(state.disbursement_lines.c.amount_with_tax),
                )
                .group_by(state.disbursement_lines.c.order_ref_1)
                .order_by(state.disbursement_lines.c.order_ref_1)
            ).all()

    assert first == DisbursementsRead(listed=1, new=1, lines=3)
    assert again == DisbursementsRead(listed=1, new=0, lines=0)
    [(reference, detail)] = kept
    assert json.loads(detail)["disbursement"]["reference"] == reference
    assert [(order, total) for order, total in lines] == [
        ("PAIDORD01", 1745),
        ("PAIDORD02", 1745),
        ("PAIDORD03", 1745),
    ]
    logged = requests.get(sandbox + "_sandbox/requests", timeout=5).json()
    details = [entry for entry in logged if "/disbursements/" in entry["path"]]
    assert len(details) == 1  # the second reading fetched no detail again
