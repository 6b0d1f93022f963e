"""Errors: every error the project raises on purpose derives from one root, and says if a retry can fix it."""

from __future__ import annotations

import importlib
import inspect
import pkgutil

from schemas.errors import RunStoppedError, SequraEtlError, SettingError, TerminalError, TransientError
from tasks.sequra_client import SequraAuthError, SequraUnavailableError
from tasks.state.errors import RunInProgressError, StateStoreError

PACKAGES = ("flows", "tasks", "schemas", "seeding", "sandbox", "demo")
ROOTS = {SequraEtlError, TerminalError, TransientError, RunStoppedError}


def project_errors() -> list[type[BaseException]]:
    """Every exception class the project's modules define."""
    errors: list[type[BaseException]] = []
    for package in PACKAGES:
        for module in pkgutil.walk_packages(importlib.import_module(package).__path__, f"{package}."):
            loaded = importlib.import_module(module.name)
            errors += [
                cls
                for _, cls in inspect.getmembers(loaded, inspect.isclass)
                if issubclass(cls, BaseException) and cls.__module__ == loaded.__name__
            ]
    return errors


def test_every_project_error_derives_from_the_root_and_is_either_terminal_or_transient() -> None:
    errors = [cls for cls in project_errors() if cls not in ROOTS]
    assert len(errors) >= 15
    assert [cls.__name__ for cls in errors if not issubclass(cls, SequraEtlError)] == []
    bases = {
        base for cls in errors for base in cls.__mro__[1:]
    }  # a family's base (SequraError) may be neither
    assert [
        cls.__name__
        for cls in errors
        if cls not in bases and issubclass(cls, TerminalError) == issubclass(cls, TransientError)
    ] == []
    assert [
        cls.__name__ for cls in errors if issubclass(cls, TerminalError) and issubclass(cls, TransientError)
    ] == []


def test_a_retry_fixes_sequra_being_down_or_a_held_lock_and_never_a_setting_or_refused_credentials() -> None:
    assert SequraUnavailableError("SeQura did not answer", maybe_delivered=False).retryable
    assert RunInProgressError("run 1 holds the lock").retryable
    assert not SettingError("SHOP_DB_URL", "is not set").retryable
    assert not SequraAuthError("SeQura refused the credentials").retryable
    assert not StateStoreError("cannot open the state store").retryable
