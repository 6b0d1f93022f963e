"""Where a run's time goes, from a py-spy profile (raw stacks): the share of samples by stage and part."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

BACKGROUND = "Thread._bootstrap"  # a thread other than the flow's: Prefect's, or the chunk read-ahead
STAGES = {
    "plan": ("found_candidates", "plan_delivery"),
    "extract": ("extract_chunk", "chunk_references"),
    "build": ("build_reports",),
    "diff": ("diff_against_last_report",),
    "write": ("add_to_dry_run_file", "finish_dry_run_file", "statistics_of_run"),
}
PARTS = {
    "Prefect walking task inputs and results (visit_collection)": ("visit_collection",),
    "database driver (rows to Python)": ("pymysql", "MySQLdb"),
    "SQLAlchemy": ("sqlalchemy",),
    "pandas and pandera": ("pandas", "pandera"),
    "JSON and hashing (orjson, sha256)": ("orjson", "openssl_sha256"),
}


def profile_summary(raw: Path) -> dict[str, dict[str, float]]:
    """Percent of the samples spent in each stage and in each notable part of the code."""
    stages: Counter[str] = Counter()
    parts: Counter[str] = Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        samples = int(count)
        total += samples
        stage = next(
            (name for name, marks in STAGES.items() if any(mark in stack for mark in marks)),
            "Prefect's threads" if stack.startswith(BACKGROUND) else "start and Prefect calls",
        )
        stages[stage] += samples
        for part, marks in PARTS.items():
            if any(mark in stack for mark in marks):
                parts[part] += samples
    share = {name: round(100 * samples / max(total, 1), 1) for name, samples in stages.most_common()}
    return {
        "stages": share,
        "parts": {name: round(100 * samples / max(total, 1), 1) for name, samples in parts.items()},
    }
