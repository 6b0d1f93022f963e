"""One delivery-report flow run for the benchmark, in a process of its own so its peak memory is its own.

Settings come from the environment, as in production, and the Prefect API from PREFECT_API_URL (the
benchmark starts one server for all its runs, so no run pays for Prefect's start). Prints one JSON object:
the run's counts, its seconds per stage, and the seconds the flow call took.
"""

from __future__ import annotations

import argparse
import json
import resource
import time

from flows.delivery_report import delivery_report


def main() -> None:
    """Run the flow once with the command line's window and print what it did as JSON."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--since")
    parser.add_argument("--until")
    parser.add_argument("--dry-run", action="store_true")
    parser.add_argument("--out")
    args = parser.parse_args()
    started = time.perf_counter()
    summary = delivery_report(since=args.since, until=args.until, dry_run=args.dry_run, out=args.out)
    flow_seconds = time.perf_counter() - started
    print(
        json.dumps(
            {
                "flow_seconds": flow_seconds,
                "stage_seconds": dict(summary.outcome.seconds),
                "found": summary.counts.found,
                "chunks": summary.chunks,
                "incremental": summary.incremental,
                "new": summary.counts.new,
                "changed": summary.counts.changed,
                "unchanged": summary.counts.already_reported,
                "quarantined": summary.counts.quarantined,
                "sent": summary.counts.sent,
                "requests": summary.outcome.requests,
                "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            }
        )
    )


if __name__ == "__main__":
    main()
