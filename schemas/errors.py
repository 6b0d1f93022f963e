"""Errors: every error sequra-etl raises on purpose derives from SequraEtlError.

Each one is either a TerminalError (a person must act: a setting, the shop's data, SeQura's refusal; running
again as it is fails again) or a TransientError (running again later can succeed with nobody acting: SeQura
unavailable, another run holding the merchant's lock). A caller asks `error.retryable`, whatever the error.
Messages say what was wrong, with which order, field or setting, and what to do.
"""

from __future__ import annotations

from typing import ClassVar, Generic, TypeVar

Done = TypeVar("Done")


class SequraEtlError(Exception):
    """The root of every error sequra-etl raises on purpose; its message says what to do."""

    retryable: ClassVar[bool] = False


class TerminalError(SequraEtlError):
    """A person must act before a run can succeed: running again as it is fails again."""


class TransientError(SequraEtlError):
    """Running again later can succeed with nobody acting: the next run (or attempt) goes on."""

    retryable = True


class SettingError(TerminalError, ValueError):
    """A setting is missing or malformed; the message names it and says what to do."""

    def __init__(self, name: str, problem: str) -> None:
        super().__init__(f"{name}: {problem}")
        self.name = name


class RunStoppedError(SequraEtlError, Generic[Done]):
    """A run stopped after it began: `cause` says why, `done` what it did before it stopped."""

    def __init__(self, cause: Exception, done: Done) -> None:
        super().__init__(str(cause))
        self.cause = cause
        self.done = done


class DisbursementFormatError(TerminalError):
    """SeQura's disbursement list or detail is not in the shape read; the message names the disbursement.

    It names the field and what was found: nothing is compared until SeQura's answer, or this reading of it,
    changes.
    """
