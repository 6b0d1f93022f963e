"""A reconciliation's files: the CSV of every difference, and the changes --apply made or would make."""

from __future__ import annotations

import csv
from pathlib import Path

from schemas.corrections import DIFFERENCE_COLUMNS, Difference
from tasks.inert import spreadsheet_cell


def start_output(path: str) -> str:
    """Create the reconciliation's CSV with its header; writes (and replaces) the file."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    with target.open("w", encoding="utf-8", newline="") as stream:
        csv.DictWriter(stream, DIFFERENCE_COLUMNS).writeheader()
    return str(target)


def add_to_output(path: str, differences: list[Difference]) -> None:
    """Append differences to the reconciliation's CSV, one row each, no cell a formula; writes the file."""
    with Path(path).open("a", encoding="utf-8", newline="") as stream:
        writer = csv.DictWriter(stream, DIFFERENCE_COLUMNS)
        writer.writerows(
            {column: spreadsheet_cell(value) for column, value in difference.csv_row().items()}
            for difference in differences
        )


def changes_path(output: Path) -> Path:
    """The file of changes next to the CSV: differences.csv -> differences.changes.txt."""
    return output.parent / f"{output.stem}.changes.txt"


def start_changes(output: str) -> str:
    """Create the empty file of changes next to the CSV (differences.changes.txt); writes it."""
    path = changes_path(Path(output))
    path.write_text("", encoding="utf-8")
    return str(path)


def add_changes(path: str, lines: list[str]) -> None:
    """Append lines to the file of changes; writes the file."""
    with Path(path).open("a", encoding="utf-8") as stream:
        stream.writelines(f"{line}\n" for line in lines)
