"""One delivery-report flow run for the benchmark, in a process of its own so its peak memory is its own.

Settings come from the environment, as in production, and the Prefect API from PREFECT_API_URL (the
benchmark starts one server for all its runs, so no run pays for Prefect's start). Prints one JSON object:
the run's counts, its seconds per stage, the seconds the flow call took, and a dry run's report digest.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import resource
import time
from pathlib import Path

import orjson

from flows.delivery_report import delivery_report
from schemas.settings import Settings
from tasks.delivery.read_ahead import worker_processes


def report_digest(path: str | None) -> str | None:
    """The SHA-256 of the report a dry run wrote, its platform block without `uname`; None for a real run.

    The uname names the machine's kernel build, which changes under the same code: without it, the digest
    is the same wherever the same code reads the same shop.
    """
    if not path:
        return None
    written = Path(path).read_bytes()
    orders, platform = written.rsplit(b',"platform":', 1)
    block = orjson.loads(platform.removesuffix(b"}}\n"))
    block.pop("uname", None)
    return hashlib.sha256(orders + orjson.dumps(block, option=orjson.OPT_SORT_KEYS)).hexdigest()


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
                "already_reported": summary.counts.already_reported,
                "quarantined": summary.counts.quarantined,
                "sent": summary.counts.sent,
                "requests": summary.outcome.requests,
                "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                # the largest of the worker processes that read and build chunks (SHOP_BUILD_PROCESSES):
                # the run's whole peak is at most peak_mb plus this once per worker
                "worker_peak_mb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024,
                # the build processes the run started: none for a run of fewer chunks than pays for them
                "build_processes": worker_processes(Settings.from_env().build_processes, summary.chunks),
                # the report a dry run wrote, as a digest: the same bytes as an earlier version's, or not
                "report_sha256": report_digest(summary.dry_run_file),
            }
        )
    )


if __name__ == "__main__":
    main()
