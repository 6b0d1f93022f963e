"""The Prefect server's part in alerting: Secret blocks, the automations, and the events runs send them.

Three automations notify a person: runs that need one (failed, crashed, timed out, late, Quarantined,
AwaitingSeQura, PayoutsDiffer); a merchant without a successful delivery report for ALERT_SILENCE_HOURS (a
proactive automation, per merchant, on the `reported` event each real run sends at its end); a run that
quarantined more than ALERT_QUARANTINE_SHARE of the orders it found. Every message links to the run in the
Prefect UI.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Iterable
from datetime import timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit
from uuid import UUID

from schemas.errors import SettingError
from schemas.masking import masked_url
from schemas.settings import BLOCK_PREFIX, FROM_BLOCKS, SETTINGS, Settings

if TYPE_CHECKING:
    from prefect.automations import Automation

    from tasks.delivery.summary import DeliverySummary

LOG = logging.getLogger(__name__)

ALERT_AUTOMATION = "sequra-etl: runs that need a person"
SILENCE_AUTOMATION = "sequra-etl: merchants without a delivery report"
QUARANTINE_SHARE_AUTOMATION = "sequra-etl: runs that quarantined too many orders"
QUARANTINED = "Quarantined"
"""The name of a Completed state whose run left orders in quarantine or held: automations can match it."""
AWAITING_SEQURA = "AwaitingSeQura"
"""The name of a Completed state whose run sent orders SeQura has not answered yet: automations match it."""
PAYOUTS_DIFFER = "PayoutsDiffer"
"""The name of a Completed state whose payout check found orders not paid as reported: automations match."""
ALERT_EVENTS = (
    "prefect.flow-run.Failed",
    "prefect.flow-run.Crashed",
    "prefect.flow-run.TimedOut",
    "prefect.flow-run.Late",
    f"prefect.flow-run.{QUARANTINED}",
    f"prefect.flow-run.{AWAITING_SEQURA}",
    f"prefect.flow-run.{PAYOUTS_DIFFER}",
)
ALERTED_FLOWS = ("delivery-report", "reconciliation", "every-merchant", "backfill", "payouts")
REPORTED = "sequra-etl.delivery-report.reported"
"""Sent by every real delivery report that reached its end (Completed, Quarantined or AwaitingSeQura)."""
QUARANTINED_TOO_MANY = "sequra-etl.delivery-report.quarantined-too-many"
"""Sent by a real delivery report that quarantined more than ALERT_QUARANTINE_SHARE of what it found."""
WATCHED = "sequra-etl.merchant.watched"
"""Sent by `configure --notify` for each merchant it knows: its silence is counted from then on."""
MERCHANT_RESOURCE = "sequra-etl.merchant."
WHEN = '{{ event.occurred.strftime("%Y-%m-%d %H:%M") }} UTC'  # when the event an alert is about happened
# RFC 3986's characters: no braces, no spaces, since the UI's address is written into the messages' templates
UI_URL_CHARACTERS = re.compile(r"[A-Za-z0-9\-._~:/?#\[\]@!$&'()*+,;=%]+")


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


def ui_address() -> str:
    """The Prefect UI's address the messages link to: PREFECT_UI_URL, else PREFECT_API_URL without /api.

    Raises a SettingError naming PREFECT_UI_URL when that is no http(s) address a message can carry.
    """
    from prefect.settings import PREFECT_UI_URL

    address = (PREFECT_UI_URL.value() or "").rstrip("/")
    parts = urlsplit(address) if UI_URL_CHARACTERS.fullmatch(address) else None
    if parts is None or parts.scheme not in ("http", "https") or not parts.hostname or "@" in parts.netloc:
        raise SettingError(
            "PREFECT_UI_URL",
            f"'{masked_url(address)}' is not an http(s) address of the Prefect UI without a user or "
            "password; set it to the address people open the UI at, like http://prefect.example.com:4200",
        )
    return address


def run_link(ui: str) -> str:
    """A template part that renders as the UI page of the flow run an alert is about."""
    return ui + "/runs/flow-run/{{ flow_run.id }}"


def merchant_resource(merchant: str) -> dict[str, str]:
    """The Prefect event resource of a merchant: sequra-etl.merchant.{id}, named by its id."""
    return {"prefect.resource.id": MERCHANT_RESOURCE + merchant, "prefect.resource.name": merchant}


def run_alert(block: UUID, ui: str) -> Automation:
    """The automation for runs a person must look at: failed, crashed, timed out, late or not plain Completed.

    Runs of the delivery report, the reconciliation and their parents; the message names the run, its
    merchant (its merchant: tag), its state and message, and links to it.
    """
    from prefect.automations import Automation
    from prefect.events.actions import SendNotification
    from prefect.events.schemas.automations import EventTrigger, Posture

    merchant = (
        '{% for tag in flow_run.tags[:10] if tag.startswith("merchant:") %}'
        " of merchant {{ tag[9:] }}{% endfor %}"
    )
    return Automation(
        name=ALERT_AUTOMATION,
        description="A delivery report or reconciliation that needs a person: failed, crashed, late, with "
        "orders in quarantine or waiting for SeQura's answer",
        trigger=EventTrigger(
            expect=set(ALERT_EVENTS),
            match={"prefect.resource.id": "prefect.flow-run.*"},
            match_related={"prefect.resource.role": "flow", "prefect.resource.name": list(ALERTED_FLOWS)},
            posture=Posture.Reactive,
            threshold=1,
        ),
        actions=[
            SendNotification(
                block_document_id=block,
                subject="SeQura ETL: {{ flow_run.name }} is {{ flow_run.state.name }}",
                body="{{ flow_run.name }} ({{ flow.name }}" + merchant + ") is {{ flow_run.state.name }}: "
                "{{ flow_run.state.message }}\nThe run: " + run_link(ui),
            )
        ],
    )


def silence_alert(block: UUID, ui: str, silence: timedelta) -> Automation:
    """The proactive automation for a merchant without a successful delivery report for `silence`.

    Per merchant: its window starts at its last `reported` event (or at `configure`'s `watched` one when
    it has none since) and fires once when nothing reported in it.
    """
    from prefect.automations import Automation
    from prefect.events.actions import SendNotification
    from prefect.events.schemas.automations import EventTrigger, Posture

    hours = f"{silence.total_seconds() / 3600:g}"
    merchant = "{{ event.resource.name }}"
    return Automation(
        name=SILENCE_AUTOMATION,
        description=f"A merchant without a successful delivery report for {hours} hours "
        "(ALERT_SILENCE_HOURS)",
        trigger=EventTrigger(
            after={REPORTED, WATCHED},
            expect={REPORTED},
            match={"prefect.resource.id": MERCHANT_RESOURCE + "*"},
            for_each={"prefect.resource.id"},
            posture=Posture.Proactive,
            threshold=1,
            within=silence,
        ),
        actions=[
            SendNotification(
                block_document_id=block,
                subject=f"SeQura ETL: no delivery report for merchant {merchant} in {hours} hours",
                body=f"Merchant {merchant} has had no successful delivery report for {hours} hours "
                "(ALERT_SILENCE_HOURS): check that the Prefect server, the worker and the every-merchant "
                "schedule are running, and what the merchant's latest runs say.\n"
                "{% if flow_run %}Its last successful one, {{ flow_run.name }}, ended "
                + WHEN
                + ": "
                + run_link(ui)
                + "{% else %}It has had none since these alerts were set up, "
                + WHEN
                + ": "
                + ui
                + "/runs"
                "{% endif %}",
            )
        ],
    )


def quarantine_share_alert(block: UUID, ui: str) -> Automation:
    """The automation for a run that quarantined more than ALERT_QUARANTINE_SHARE of what it found."""
    from prefect.automations import Automation
    from prefect.events.actions import SendNotification
    from prefect.events.schemas.automations import EventTrigger, Posture

    said = "{{ event.payload.quarantined }} of the {{ event.payload.found }} orders it found"
    return Automation(
        name=QUARANTINE_SHARE_AUTOMATION,
        description="A delivery report that quarantined more than ALERT_QUARANTINE_SHARE of the orders it "
        "found",
        trigger=EventTrigger(
            expect={QUARANTINED_TOO_MANY},
            match={"prefect.resource.id": MERCHANT_RESOURCE + "*"},
            posture=Posture.Reactive,
            threshold=1,
        ),
        actions=[
            SendNotification(
                block_document_id=block,
                subject="SeQura ETL: {{ flow_run.name }} quarantined {{ event.payload.share }}% of its "
                "orders",
                body="Merchant {{ event.resource.name }}: {{ flow_run.name }} quarantined " + said + " "
                "({{ event.payload.share }}%, more than ALERT_QUARANTINE_SHARE, {{ event.payload.limit }}%); "
                "what is wrong with each and what to do is in the run's quarantine table.\nThe run: "
                + run_link(ui),
            )
        ],
    )


def notification_block(notify_block: str) -> UUID:
    """The id of the one notification block named `notify_block` (type/name if several share the name)."""
    from prefect import get_client

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
    return named[0].id


def create_alert_automations(notify_block: str, settings: Settings) -> list[str]:
    """Create (or replace) the three alerting automations that notify `notify_block`; what it did, in lines.

    Writes the Prefect server's automations, and sends it a `watched` event per merchant of `settings`, so
    a merchant whose runs never succeed is noticed too.
    """
    from prefect import get_client

    ui = ui_address()
    block = notification_block(notify_block)
    automations = [
        run_alert(block, ui),
        silence_alert(block, ui, settings.alert_silence()),
        quarantine_share_alert(block, ui),
    ]
    with get_client(sync_client=True) as client:
        for automation in automations:
            for existing in client.read_automations_by_name(name=automation.name):
                client.delete_automation(existing.id)
    created = [automation.create() for automation in automations]
    merchants = watch(configured_merchants(settings))
    events = ", ".join(event.rsplit(".", 1)[-1] for event in ALERT_EVENTS)
    hours = f"{settings.alert_silence_hours:g}"
    watched = (
        f"watching {', '.join(merchants)} from now"
        if merchants
        else "no merchant is configured here (SEQURA_MERCHANT_ID, SEQURA_MERCHANTS): each is watched from "
        "its first successful delivery report"
    )
    return [
        f"automation '{created[0].name}' ({created[0].id}) notifies {notify_block} of runs {events}",
        f"automation '{created[1].name}' ({created[1].id}) notifies {notify_block} of a merchant without a "
        f"successful delivery report for {hours} hours (ALERT_SILENCE_HOURS); {watched}",
        f"automation '{created[2].name}' ({created[2].id}) notifies {notify_block} of a run that quarantined "
        f"more than {settings.alert_quarantine_share}% of the orders it found (ALERT_QUARANTINE_SHARE)",
        f"the messages link to runs at {ui} (PREFECT_UI_URL)",
    ]


def configured_merchants(settings: Settings) -> tuple[str, ...]:
    """The merchants the settings name (SEQURA_MERCHANTS, or SEQURA_MERCHANT_ID); none when neither is set."""
    if settings.merchants:
        return tuple(account.merchant_id for account in settings.merchants)
    return (settings.merchant_id,) if settings.merchant_id else ()


def watch(merchants: Iterable[str]) -> list[str]:
    """Send the Prefect server a `watched` event per merchant (its silence counts from now); the merchants."""
    from prefect import get_client
    from prefect.events import Event

    events = [Event(event=WATCHED, resource=merchant_resource(merchant)) for merchant in merchants]
    if events:
        with get_client(sync_client=True) as client:
            client.request("POST", "/events", json=[event.model_dump(mode="json") for event in events])
    return [event.resource.name or "" for event in events]


def outcome_events(summary: DeliverySummary, quarantine_share: Decimal) -> list[dict[str, Any]]:
    """The events of a real delivery report that reached its end: `reported`, maybe `quarantined-too-many`.

    The second when it quarantined more than `quarantine_share` percent of the orders it found.
    """
    if summary.dry_run:
        return []
    resource = merchant_resource(summary.merchant)
    events: list[dict[str, Any]] = [{"event": REPORTED, "resource": resource}]
    counts = summary.counts
    if counts.found and counts.quarantined * 100 > quarantine_share * counts.found:
        share = (Decimal(counts.quarantined) * 100 / counts.found).quantize(Decimal("0.1"))
        payload = {
            "found": counts.found,
            "quarantined": counts.quarantined,
            "share": str(share),
            "limit": str(quarantine_share),
        }
        events.append({"event": QUARANTINED_TOO_MANY, "resource": resource, "payload": payload})
    return events


def announce_outcome(summary: DeliverySummary, settings: Settings) -> None:
    """Send the Prefect server the events of a delivery report that reached its end (see outcome_events).

    Best effort: a server that does not take them is logged, never raised; a dry run sends nothing.
    """
    from prefect.events import emit_event

    try:
        for event in outcome_events(summary, settings.alert_quarantine_share):
            emit_event(**event)
    except Exception as error:
        LOG.warning("could not tell Prefect's alerts that the run ended: %s: %s", type(error).__name__, error)
