"""The nightly flow: one delivery-report child run per SeQura merchant of the shop."""

from __future__ import annotations

from prefect import flow, runtime

from flows.fan_out import ChildOutcome, ChildRun, run_children
from flows.parameters import check_parameters, run_started_at
from schemas.settings import Settings


def run_name() -> str:
    """every-merchant-{day of the run's start}."""
    return f"every-merchant-{run_started_at():%Y-%m-%d}"


@flow(name="every-merchant", flow_run_name=run_name, validate_parameters=False)
def every_merchant(dry_run: bool = False) -> list[ChildOutcome]:
    """Send every merchant's delivery report, each from its last successful run to now, in a child run.

    Each merchant has its own lock, state and artifacts; with a Prefect server the children go to the work
    pool, so several workers (on several machines) share them.

    Args:
        dry_run: build and diff only; each child writes the report it would send.
    """
    check_parameters(dry_run=dry_run)
    children = [ChildRun(merchant) for merchant in Settings.from_env().merchant_ids()]
    scope = f"every-merchant:{runtime.flow_run.id}"
    return run_children(children, dry_run=bool(dry_run), kind="every-merchant", scope=scope)
