"""Order reports as the pipeline passes them between stages, and the rows of a run's tables."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import orjson

from schemas.sequra import Cancellation, OrderReport

CANCELLED = b'{"state":"cancelled"'  # how the payload of a cancellation begins: its state goes first


class Stage(enum.StrEnum):
    """Where an order was stopped."""

    BUILD = "build"
    LOAD = "load"
    UPDATE = "update"  # SeQura refused the order update (409) or does not know the order (404)


class Change(enum.StrEnum):
    """What the diff says of an order report compared with what was last sent."""

    NEW = "new"
    CHANGED = "changed"
    UNCHANGED = "unchanged"


@dataclass(frozen=True)
class BuiltReport:
    """One order reference turned into a SeQura order report, serialised once.

    `payload` is the order exactly as it goes on the wire and into the state store (UTF-8 JSON, `state`
    first, then the other keys sorted); `fingerprint` is the SHA-256 of those same bytes without `state`.
    The report as a dict is read back from the payload when asked for: a chunk travels from its build
    process and waits as those bytes, not as a tree of objects per order and item.
    """

    reference: str
    order_ref_1: str
    id_orders: tuple[int, ...]
    payload: bytes
    fingerprint: str
    reported_by_module: bool = False

    @cached_property
    def report(self) -> OrderReport | Cancellation:
        """The report the payload holds, as dicts and lists (its keys in the payload's order)."""
        return orjson.loads(self.payload)  # type: ignore[no-any-return]

    @property
    def cancellation(self) -> bool:
        """Whether it tells SeQura of an order cancelled before it shipped (an update, never a report)."""
        return self.payload.startswith(CANCELLED)

    def __getstate__(self) -> dict[str, Any]:
        """What pickling keeps: the fields, not the report read back from the payload."""
        return {name: value for name, value in self.__dict__.items() if name != "report"}


@dataclass(frozen=True)
class QuarantinedOrder:
    """An order reference that could not be reported, and why, in words a merchant can act on."""

    reference: str
    order_ref_1: str
    id_orders: tuple[int, ...]
    stage: Stage
    reason: str


@dataclass(frozen=True)
class BuildResult:
    """What the build stage made of one extract."""

    reports: list[BuiltReport] = field(default_factory=list)
    quarantined: list[QuarantinedOrder] = field(default_factory=list)
    other_merchant: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class ClassifiedReport:
    """A built report with the diff's verdict and the fingerprint last sent, if any."""

    built: BuiltReport
    change: Change
    previous_fingerprint: str | None = None


@dataclass(frozen=True)
class SentOrder:
    """One order sent (or, in a dry run, to be sent), as the run's tables show it."""

    reference: str
    order_ref_1: str
    id_orders: tuple[int, ...]
    state: str
    shipped_at: str  # shop time, to the minute
    items: int
    shipped_total: str
    remaining_total: str


@dataclass(frozen=True)
class UpdatedOrder:
    """One order that changed after it was reported: what changed, and what became of its update."""

    reference: str
    order_ref_1: str
    id_orders: tuple[int, ...]
    changes: str
    result: str
