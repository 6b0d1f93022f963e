"""Child processes that end with the process that started them: Linux's parent-death signal."""

from __future__ import annotations

import ctypes
import os
import sys

PR_SET_PDEATHSIG = 1
# looked up as this module is imported, so a child between fork and exec (preexec_fn) only calls it
_PRCTL = ctypes.CDLL(None, use_errno=True).prctl if sys.platform.startswith("linux") else None


def die_with_parent(signal_number: int, parent: int) -> None:
    """In a child: have Linux send it `signal_number` when its parent ends; exits now if it already has.

    `parent` is the pid of the process that started the child. Linux signals the child when the thread
    that started it ends, so a child is started by a thread that outlives it. Off Linux, does nothing.
    """
    if _PRCTL is None:
        return
    if _PRCTL(PR_SET_PDEATHSIG, signal_number, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG) failed")
    if os.getppid() != parent:  # the parent died before the signal was asked for
        os._exit(1)
