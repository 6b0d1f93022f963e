"""Order reports as the pipeline passes them between stages, and the rows of a run's tables."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from schemas.sequra import Cancellation, OrderReport


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
    """

    reference: str
    order_ref_1: str
    id_orders: tuple[int, ...]
    report: OrderReport | Cancellation
    payload: bytes
    fingerprint: str
    reported_by_module: bool = False

    @property
    def cancellation(self) -> bool:
        """Whether it tells SeQura of an order cancelled before it shipped (an update, never a report)."""
        return self.report["state"] == "cancelled"


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
