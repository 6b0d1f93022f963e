"""The reconciliation command: what SeQura corrected, compared with the shop, and fixed with --apply."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from flows.cli.options import (
    SHOP_AND_STORE,
    Commands,
    check_out_option,
    check_ready,
    command,
    out_options,
    setting_options,
    settings_of,
)
from schemas.errors import SettingError


def add_commands(commands: Commands) -> None:
    """Reconcile."""
    reconcile_command = command(
        commands,
        "reconcile",
        "list every shop value that differs from SeQura-corrected buyer data, and fix them with --apply",
        "sequra-etl reconcile --corrections corrections.jsonl --out differences.csv",
        reconcile,
        "Compare SeQura's corrections (JSON Lines, a JSON array or CSV; a file or an http(s) URL) with the "
        "shop's buyers and addresses, field by field. Without --apply nothing is written.",
    )
    reconcile_command.add_argument(
        "--corrections", required=True, metavar="PATH_OR_URL", help="SeQura's corrections: a file or a URL"
    )
    out_options(reconcile_command, "FILE.csv", "write every difference to this CSV (and FILE.changes.txt)")
    reconcile_command.add_argument(
        "--apply",
        action="store_true",
        help="write the corrections into the shop as PrestaShop does (needs INSERT and UPDATE grants)",
    )
    setting_options(reconcile_command, SHOP_AND_STORE)


def reconcile(args: argparse.Namespace) -> int:
    """Check --out, the settings, the source, the shop and the state store, then reconcile once; print it."""
    from flows.reconcile import reconciliation
    from tasks.inert import plain_text
    from tasks.reconciliation.output import changes_path
    from tasks.reconciliation.source import is_url, refuse_credentials_in
    from tasks.reconciliation.summary import changes_markdown, reconciliation_markdown

    check_out_option(args, changes_path)
    settings = settings_of(args, "shop_db_url", "merchant_id")
    if not is_url(args.corrections) and not os.path.isfile(args.corrections):
        raise SettingError(
            "--corrections", f"no file at {args.corrections}; give a file path or an http(s) URL"
        )
    if is_url(args.corrections):
        refuse_credentials_in(args.corrections)
    check_ready(settings)
    summary = reconciliation(corrections=args.corrections, out=args.out, apply=args.apply)
    print(plain_text(reconciliation_markdown(summary)))
    print()
    every_change = Path(summary.changes).read_text(encoding="utf-8").splitlines()
    print(plain_text(changes_markdown(summary, every_change)))
    return 0
