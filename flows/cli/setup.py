"""The setup command: keep secret settings in Prefect Secret blocks, and create the alerting automation."""

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
        "keep the secret settings in Prefect Secret blocks, and create the automation that alerts a person",
        "sequra-etl configure --notify ops-slack",
        configure,
        "Save SHOP_DB_URL, STATE_DB_URL, SEQURA_USERNAME, SEQURA_PASSWORD (and the corrections' credentials) "
        "from the environment into Prefect Secret blocks, and print the block:NAME values to use instead. "
        "With --notify, create the automation that sends the named notification block a message when a run "
        "fails, crashes, is late, or leaves orders in quarantine.",
    )
    configure_command.add_argument(
        "--notify", metavar="BLOCK", help="a notification block (Slack, e-mail, webhook…)"
    )


def configure(args: argparse.Namespace) -> int:
    """Keep the secret settings in Prefect Secret blocks; with --notify, create the alerting automation."""
    from flows.alerts import create_alert_automation, keep_secrets

    if not os.environ.get("PREFECT_API_URL"):
        raise SettingError(
            "PREFECT_API_URL",
            "is not set: blocks and automations would go to a temporary server and be lost; set it to your "
            "Prefect server's API, like http://127.0.0.1:4200/api",
        )
    for env, block in keep_secrets().items():
        print(f"{env}=block:{block}")
    if args.notify:
        print(create_alert_automation(args.notify))
    return 0
