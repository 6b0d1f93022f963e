"""The dry run's file: the delivery report a run would send, one order a line."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import orjson

from schemas.reports import BuiltReport
from schemas.sequra import Platform, Statistics


def start_dry_run_file(path: Path, merchant_id: str) -> None:
    """Begin the delivery report a dry run writes: the merchant and an open list of orders; creates it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b'{"delivery_report":{"merchant":' + orjson.dumps({"id": merchant_id}) + b',"orders":[')


def add_to_dry_run_file(path: Path, reports: Sequence[BuiltReport]) -> None:
    """Append orders to a dry run's report, one a line, as SeQura would receive them; writes the file."""
    with path.open("ab") as report:
        report.write(b"".join(b"\n" + built.payload + b"," for built in reports))


def finish_dry_run_file(path: Path, statistics: Statistics | None, platform: Platform) -> Path:
    """Close a dry run's report with the statistics and platform blocks; the file is then valid JSON."""
    with path.open("r+b") as report:
        report.seek(-1, 2)
        if report.read(1) == b",":
            report.seek(-1, 2)
            report.truncate()
        report.seek(0, 2)
        tail = b"\n]"
        if statistics is not None:
            tail += b',"statistics":' + orjson.dumps(statistics)
        report.write(tail + b',"platform":' + orjson.dumps(platform) + b"}}\n")
    return path
