"""Runs of the pipeline without Prefect, through DeliveryRun: the one owner of a run the flow uses too."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import Engine

from schemas.errors import RunStoppedError
from schemas.outcomes import DeliveryOutcome
from schemas.settings import Settings
from tasks.clock import Clock
from tasks.delivery.run import DeliveryRun, Steps
from tasks.delivery.summary import DeliverySummary
from tasks.resources import RunResources
from tasks.window import Window
from tests.shops import MERCHANT


def settings_for(engine: Engine, state_url: str, **overrides: str) -> Settings:
    """Settings pointing at a shop and a state store, as a run reads them from the environment."""
    environ = {
        "SHOP_DB_URL": engine.url.render_as_string(hide_password=False),
        "STATE_DB_URL": state_url,
        "SEQURA_MERCHANT_ID": MERCHANT,
        "SEQURA_USERNAME": "demo",
        "SEQURA_PASSWORD": "demo-secret",
        "SEQURA_BACKOFF_SECONDS": "0.01",
        **overrides,
    }
    return Settings.from_env(environ)


def run_once(
    settings: Settings, window: Window, *, clock: Clock | None = None, steps: Steps | None = None
) -> DeliveryOutcome:
    """One real run as the flow makes it, without Prefect: what it came to; a run that stops raises why."""
    with RunResources.open(settings, clock=clock) as resources:
        try:
            return DeliveryRun(resources, window).run(steps).outcome
        except RunStoppedError as stopped:
            raise stopped.cause from None


def dry_run(settings: Settings, window: Window, out: Path) -> DeliverySummary:
    """One dry run as the flow makes it, without Prefect: writes `out`, sends and records nothing."""
    with RunResources.open(settings) as resources:
        return DeliveryRun(resources, window, dry_run_file=out).run()
