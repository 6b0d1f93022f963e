"""What stops a run at the state store: it cannot be used, it lost a merchant, another run holds the lock."""

from __future__ import annotations

from schemas.errors import TerminalError, TransientError


class StateStoreError(TerminalError):
    """The state store cannot be opened or is newer than this code; the message says what to do."""


class LostStateStoreError(StateStoreError):
    """The state store holds nothing of a merchant that earlier runs delivered for: sending could repeat."""


class RunInProgressError(TransientError):
    """Another run for the same merchant is sending; two at once could send the same orders twice."""
