"""The setup command: keep secret settings in Prefect Secret blocks, and create the alerting automations."""

from __future__ import annotations

import argparse
import os

from flows.cli.options import Commands, command
from schemas.errors import SettingError


def add_commands(commands: Commands) -> None:
    """Configure."""
    configure_command = command(
        commands,
        "configure",
        "keep the secret settings in Prefect Secret blocks, and create the automations that alert a person",
        "sequra-etl configure --notify ops-slack",
        configure,
        "Save SHOP_DB_URL, STATE_DB_URL, SEQURA_USERNAME, SEQURA_PASSWORD (and the corrections' credentials) "
        "from the environment into Prefect Secret blocks, and print the block:NAME values to use instead. "
        "With --notify, create the automations that send the named notification block a message, linking to "
        "the run, when a run fails, crashes, is late, leaves orders in quarantine or waiting for SeQura's "
        "answer, when it quarantines more than ALERT_QUARANTINE_SHARE of the orders it found, and when a "
        "merchant has had no successful delivery report for ALERT_SILENCE_HOURS.",
    )
    configure_command.add_argument(
        "--notify", metavar="BLOCK", help="a notification block (Slack, e-mail, webhook…)"
    )


def configure(args: argparse.Namespace) -> int:
    """Keep the secret settings in Prefect Secret blocks; with --notify, create the alerting automations."""
    from flows.alerts import create_alert_automations, keep_secrets
    from schemas.settings import Settings

    if not os.environ.get("PREFECT_API_URL"):
        raise SettingError(
            "PREFECT_API_URL",
            "is not set: blocks and automations would go to a temporary server and be lost; set it to your "
            "Prefect server's API, like http://127.0.0.1:4200/api",
        )
    for env, block in keep_secrets().items():
        print(f"{env}=block:{block}")
    if args.notify:
        for line in create_alert_automations(args.notify, Settings.from_env()):
            print(line)
    return 0
