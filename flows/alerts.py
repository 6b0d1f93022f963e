"""What `sequra-etl configure` sets up on the Prefect server: Secret blocks and the alerting automation."""

from __future__ import annotations

import os

from schemas.errors import SettingError
from schemas.settings import BLOCK_PREFIX, FROM_BLOCKS, SETTINGS

ALERT_AUTOMATION = "sequra-etl: runs that need a person"
QUARANTINED = "Quarantined"
"""The name of a Completed state whose run left orders in quarantine or held: automations can match it."""
AWAITING_SEQURA = "AwaitingSeQura"
"""The name of a Completed state whose run sent orders SeQura has not answered yet: automations match it."""
ALERT_EVENTS = (
    "prefect.flow-run.Failed",
    "prefect.flow-run.Crashed",
    "prefect.flow-run.TimedOut",
    "prefect.flow-run.Late",
    f"prefect.flow-run.{QUARANTINED}",
    f"prefect.flow-run.{AWAITING_SEQURA}",
)
ALERTED_FLOWS = ("delivery-report", "reconciliation", "every-merchant", "backfill")


def block_name(env: str) -> str:
    """The Secret block a setting is kept in, e.g. SEQURA_PASSWORD: sequra-etl-sequra-password."""
    return "sequra-etl-" + env.lower().replace("_", "-")


def keep_secrets() -> dict[str, str]:
    """Save each secret setting of the environment in a Secret block; the variables and their blocks.

    Writes the Prefect server's blocks (overwriting earlier ones of the same name); a setting already given
    as block:NAME is left as it is.
    """
    from prefect.blocks.system import Secret

    kept: dict[str, str] = {}
    for attr in FROM_BLOCKS:
        env = SETTINGS[attr].env
        value = os.environ.get(env)
        if not value or value.startswith(BLOCK_PREFIX):
            continue
        Secret(value=value).save(block_name(env), overwrite=True)
        kept[env] = block_name(env)
    return kept


def create_alert_automation(notify_block: str) -> str:
    """Create (or replace) the automation that notifies `notify_block` of runs a person must look at.

    Failed, crashed, timed-out and late runs of the delivery report and the reconciliation, and completed
    runs that left orders in quarantine (the Quarantined state). Writes the Prefect server's automations;
    says what it created.
    """
    from prefect import get_client
    from prefect.automations import Automation
    from prefect.events.actions import SendNotification
    from prefect.events.schemas.automations import EventTrigger, Posture

    kind, _, name = notify_block.rpartition("/")
    with get_client(sync_client=True) as client:
        named = [
            block
            for block in client.read_block_documents(include_secrets=False)
            if block.name == name and (not kind or (block.block_type and block.block_type.slug == kind))
        ]
        if len(named) != 1:
            raise SettingError(
                "--notify",
                f"{len(named)} blocks are named '{notify_block}'; name one notification block (Blocks in the "
                "UI), as type/name if several share the name",
            )
        for existing in client.read_automations_by_name(name=ALERT_AUTOMATION):
            client.delete_automation(existing.id)
    automation = Automation(
        name=ALERT_AUTOMATION,
        description="A delivery report or reconciliation that needs a person: failed, crashed, late, or "
        "with orders in quarantine",
        trigger=EventTrigger(
            expect=set(ALERT_EVENTS),
            match={"prefect.resource.id": "prefect.flow-run.*"},
            match_related={"prefect.resource.role": "flow", "prefect.resource.name": list(ALERTED_FLOWS)},
            posture=Posture.Reactive,
            threshold=1,
        ),
        actions=[
            SendNotification(
                block_document_id=named[0].id,
                subject="SeQura ETL: {{ flow_run.name }} is {{ flow_run.state.name }}",
                body="{{ flow_run.name }} ({{ flow.name }}) is {{ flow_run.state.name }}: "
                "{{ flow_run.state.message }}\nSee {{ flow_run|ui_url }}",
            )
        ],
    ).create()
    events = ", ".join(event.rsplit(".", 1)[-1] for event in ALERT_EVENTS)
    return f"automation '{automation.name}' ({automation.id}) notifies {notify_block} of runs {events}"
