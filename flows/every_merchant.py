"""The nightly flow: one delivery-report child run per SeQura merchant of the shop."""

from __future__ import annotations

from prefect import flow, runtime

from flows.children import ChildOutcome, ChildRun, parent_state
from flows.fan_out import FanOut, run_children, shop_timezone
from flows.history import rename_run
from flows.parameters import check_parameters, run_started_at
from schemas.settings import Settings
from tasks.window import shop_minute


def run_name() -> str:
    """every-merchant-{day of the run's start}, until the shop's time zone is read."""
    return f"every-merchant-{run_started_at():%Y-%m-%d}"


@flow(name="every-merchant", flow_run_name=run_name, validate_parameters=False)
def every_merchant(dry_run: bool = False) -> list[ChildOutcome]:
    """Send every merchant's delivery report, each from its last successful run to now, in a child run.

    Each merchant has its own lock, state and artifacts; with a Prefect server the children go to the work
    pool, so several workers (on several machines) share them. The run ends as its worst child: Failed,
    Quarantined, AwaitingSeQura, or Completed, and is named after its start in the shop's time zone.

    Args:
        dry_run: build and diff only; each child writes the report it would send.
    """
    check_parameters(dry_run=dry_run)
    children = [ChildRun(merchant) for merchant in Settings.from_env().merchant_ids()]
    timezone = shop_timezone(children[0].merchant if children else None)
    rename_run(f"every-merchant {shop_minute(run_started_at(), timezone)} {timezone}")
    fan = FanOut("every-merchant", f"every-merchant:{runtime.flow_run.id}", bool(dry_run), timezone)
    return parent_state(run_children(children, fan))  # type: ignore[return-value]
