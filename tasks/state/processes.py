"""Processes a run lock names: who this process is, and whether a process that held a lock is gone.

A process is named by its host, its pid, the pid space the pid means something in (the machine's boot and
the pid namespace, so two containers or two boots are never confused) and its start time (so a pid the
kernel gave to another process later is not taken for the one that held the lock). Linux's /proc tells
all of it; elsewhere the pid space is unknown and no process is ever judged gone.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from pathlib import Path

PROC = Path("/proc")
ENDED_STATES = frozenset({"Z", "X", "x"})  # zombie (killed, not yet reaped) and dead


@dataclass(frozen=True)
class RunProcess:
    """The process a run works in: host, pid, the pid space it is valid in, and when it started."""

    host: str
    pid: int
    pid_space: str | None  # boot id and pid namespace; None when unknown (not Linux)
    started: int | None  # clock ticks after boot, /proc/<pid>/stat field 22; None when unknown

    def in_words(self) -> str:
        """The process as a person finds it: `process 1234 on host worker-1`."""
        return f"process {self.pid} on host {self.host}"


def _read(path: Path) -> str | None:
    """The text of a /proc file, or None when it cannot be read (absent, hidden, not Linux)."""
    try:
        return path.read_text()
    except OSError:
        return None


def _stat(pid: int) -> tuple[str, int] | None:
    """(state, start time) of a live or zombie process from /proc/<pid>/stat, or None if it has none."""
    text = _read(PROC / str(pid) / "stat")
    if text is None:
        return None
    fields = text[text.rfind(")") + 2 :].split()  # the command name may hold spaces and parentheses
    return fields[0], int(fields[19])


def _pid_space() -> str | None:
    """The machine's boot id and this process's pid namespace, where a pid names one process; or None."""
    boot = _read(PROC / "sys" / "kernel" / "random" / "boot_id")
    try:
        namespace = os.readlink(PROC / "self" / "ns" / "pid")
    except OSError:
        return None
    return None if boot is None else f"{boot.strip()} {namespace}"


def this_process() -> RunProcess:
    """The process this code runs in; reads /proc."""
    pid = os.getpid()
    stat = _stat(pid)
    return RunProcess(socket.gethostname(), pid, _pid_space(), stat[1] if stat is not None else None)


def _exists(pid: int) -> bool:
    """Whether the kernel knows the pid (another user's process, hidden from /proc, counts); signals none."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def of_this_host(process: RunProcess) -> bool:
    """Whether `process` ran on this host, in this pid space, so that /proc can tell if it ended."""
    here = this_process()
    return (
        process.pid_space is not None
        and process.started is not None
        and (process.host, process.pid_space) == (here.host, here.pid_space)
    )


def process_gone(process: RunProcess) -> str | None:
    """Why `process` has provably ended, in words, or None when it may be alive (or is not of this host).

    Only a process of this host and pid space can be judged: gone from the process table, a zombie, or its
    pid now held by a process that started at another time. Reads /proc.
    """
    if not of_this_host(process):
        return None
    stat = _stat(process.pid)
    if stat is None:
        return None if _exists(process.pid) else f"its {process.in_words()} is gone"
    state, started = stat
    if started != process.started:
        return f"its {process.in_words()} is gone (the pid now belongs to another process)"
    if state in ENDED_STATES:
        return f"its {process.in_words()} has ended (killed, not yet reaped)"
    return None
