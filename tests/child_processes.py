"""Processes a short-lived parent starts, and whether they outlive it once it is killed."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.prefect_servers import PROJECT


def ended(pid: int) -> bool:
    """Whether the process `pid` is gone, or a zombie nobody reaped yet."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return True
    return stat.rsplit(")", 1)[1].split()[0] in ("Z", "X")


def children_of(parent: int) -> list[int]:
    """The pids of the processes whose parent is `parent`; reads /proc."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (FileNotFoundError, ProcessLookupError):
            continue
        if int(fields[1]) == parent:
            found.append(int(stat.parent.name))
    return found


def started_by_a_parent(script: str, env: dict[str, str] | None = None) -> tuple[subprocess.Popen[str], int]:
    """Run `script` in a python of its own until it prints a pid on a line; it and that pid.

    The script starts what it tests, prints the pid to watch, and sleeps. Starts a process.
    """
    parent = subprocess.Popen(
        [sys.executable, "-c", script], cwd=PROJECT, env=env, stdout=subprocess.PIPE, text=True
    )
    line = parent.stdout.readline() if parent.stdout else ""
    if not line.strip().isdigit():
        parent.kill()
        parent.wait()
    assert line.strip().isdigit(), f"the parent said {line!r}"
    return parent, int(line)


def killed_with_its_children(parent: subprocess.Popen[str], children: list[int], within: float) -> list[int]:
    """SIGKILL the parent; the children still running `within` seconds later (then killed). Kills them."""
    parent.kill()
    parent.wait()
    deadline = time.monotonic() + within
    while time.monotonic() < deadline and not all(ended(child) for child in children):
        time.sleep(0.1)
    left = [child for child in children if not ended(child)]
    for child in left:
        os.kill(child, signal.SIGKILL)
    return left
