"""What Prefect remembers of earlier delivery reports: run tags, and the guard against a lost state store."""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path

from prefect import get_client, runtime
from prefect.client.schemas.filters import (
    FlowFilter,
    FlowFilterName,
    FlowRunFilter,
    FlowRunFilterId,
    FlowRunFilterState,
    FlowRunFilterStateType,
    FlowRunFilterTags,
)
from prefect.client.schemas.objects import FlowRun, StateType
from prefect.client.schemas.sorting import FlowRunSort
from sqlalchemy import Engine
from sqlalchemy.engine import URL

from schemas.masking import masked_url
from schemas.settings import OUTPUT_DIR, Settings
from tasks.state.errors import LostStateStoreError
from tasks.state.runs import has_history, has_run_here, recorded_flow_runs

LOG = logging.getLogger(__name__)
DELIVERS = "delivers"  # the tag of a run that may send (not a dry run)
SENDING_STATES = [StateType.COMPLETED, StateType.FAILED, StateType.CRASHED]
LEGACY_STORE = OUTPUT_DIR / "state.sqlite"  # the default state store before it moved to the user data folder


def _digest(text: str) -> str:
    """12 hex digits standing for `text` in a tag, so that no address or password shows."""
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def shop_identity(url: URL | None, prefix: str) -> str:
    """The shop's database as one text however its URL is written (host case, localhost, default port)."""
    if url is None:
        return ""
    backend = url.get_backend_name()
    if backend == "sqlite":
        return f"sqlite:{Path(url.database or '').resolve()}/{prefix}"
    host = (url.host or "").lower().replace("localhost", "127.0.0.1")
    port = url.port or {"mysql": 3306, "mariadb": 3306, "postgresql": 5432}.get(backend)
    return f"{backend}://{host}:{port}/{url.database}/{prefix}"


def run_tags(settings: Settings, dry_run: bool) -> list[str]:
    """The tags a run carries in Prefect: its merchant, shop and SeQura endpoint, and whether it may send."""
    return [
        f"merchant:{settings.merchant_id}",
        "shop:" + _digest(shop_identity(settings.shop_db_url, settings.shop_table_prefix)),
        "api:" + _digest(settings.api_url.lower()),
        "dry-run" if dry_run else DELIVERS,
    ]


def tag_run(tags: list[str]) -> None:
    """Add tags to this flow run (best effort: a Prefect API that does not answer only costs the tags)."""
    try:
        with get_client(sync_client=True) as client:
            run = client.read_flow_run(runtime.flow_run.id)
            client.update_flow_run(run.id, tags=sorted({*run.tags, *tags}))
    except Exception as error:
        LOG.warning("could not tag this run in Prefect (%s); it is not counted by later runs' checks", error)


def rename_run(name: str) -> None:
    """Rename this flow run; writes the Prefect server (best effort: one that does not answer keeps it)."""
    try:
        with get_client(sync_client=True) as client:
            client.update_flow_run(runtime.flow_run.id, name=name)
    except Exception as error:  # the name is a courtesy: never stop a run for it
        LOG.info("this run keeps its first name, not %s: %s", name, error)


def earlier_deliveries(tags: list[str]) -> list[FlowRun]:
    """Runs other than this one that may have sent for the same merchant, shop and SeQura endpoint.

    Completed, failed or crashed runs tagged alike, and completed runs from before runs were tagged (whose
    merchant is unknown, so they count).
    """
    others = FlowRunFilterId(not_any_=[runtime.flow_run.id])
    delivery = FlowFilter(name=FlowFilterName(any_=["delivery-report"]))
    with get_client(sync_client=True) as client:
        tagged = client.read_flow_runs(
            flow_filter=delivery,
            flow_run_filter=FlowRunFilter(
                id=others,
                tags=FlowRunFilterTags(all_=tags),
                state=FlowRunFilterState(type=FlowRunFilterStateType(any_=SENDING_STATES)),
            ),
            sort=FlowRunSort.START_TIME_DESC,
            limit=5,
        )
        completed = client.read_flow_runs(
            flow_filter=delivery,
            flow_run_filter=FlowRunFilter(
                id=others, state=FlowRunFilterState(type=FlowRunFilterStateType(any_=[StateType.COMPLETED]))
            ),
            sort=FlowRunSort.START_TIME_DESC,
            limit=50,
        )
    untagged = [
        run
        for run in completed
        if not any(tag.startswith("merchant:") for tag in run.tags) and not run.parameters.get("dry_run")
    ]
    return tagged + untagged


def check_not_lost(store: Engine, settings: Settings, tags: list[str]) -> None:
    """Refuse to send from a state store that knows nothing of a merchant earlier runs delivered for.

    Raises LostStateStoreError naming STATE_DB_URL: a lost (or newly pointed) store would send every order
    of the window again. The evidence is Prefect's runs, or the store an older version kept in
    ./.sequra-etl/. A store where a run of the merchant once took its lock passed this check then, so runs
    that failed later (refused the lock, say) are no evidence. `sequra-etl adopt` records what SeQura has,
    after which runs go on. Reads the store and the Prefect API.
    """
    merchant = settings.merchant_id or ""
    if has_history(store, merchant) or has_run_here(store, merchant):
        return  # a run that took the lock here passed this check: later runs' failures are not a lost store
    where = masked_url(settings.state_url())
    if settings.state_db_url is None and LEGACY_STORE.is_file():
        raise LostStateStoreError(
            f"the state store {where} holds no run of merchant {merchant}, and {LEGACY_STORE.resolve()} is "
            "the state store an older version kept here: set STATE_DB_URL=sqlite:///"
            f"{LEGACY_STORE.resolve()} (and deploy again), or move that file to the new place"
        )
    own = recorded_flow_runs(store, merchant)  # its own failed runs are no sign of another store
    earlier = [run for run in earlier_deliveries(tags) if str(run.id) not in own]
    if not earlier:
        return
    last = earlier[0]
    raise LostStateStoreError(
        f"the state store {where} holds no run of merchant {merchant}, but Prefect shows delivery-report "
        f"runs that may have sent for this merchant, shop and SeQura (the last: {last.name}, "
        f"{last.state_name}); sending now could report their orders again. Point STATE_DB_URL at the store "
        "they used (and deploy again); if it is really lost, record what SeQura has with "
        "`sequra-etl adopt --since ... --until ...` first"
    )
