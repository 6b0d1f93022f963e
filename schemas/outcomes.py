"""What a delivery run came to: one type for a chunk and for a whole run, added up chunk by chunk.

The counts carry the headings the Prefect UI shows (a run's counts table, a backfill's table of windows,
the summary), in words: COUNT_HEADINGS; every other view of a run is derived from them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields

from schemas.reports import QuarantinedOrder, SentOrder, UpdatedOrder

ROWS_SHOWN = 1000  # rows of each table a run's artifacts list; the state store keeps them all


@dataclass(frozen=True)
class DeliveryCounts:
    """How many order references a chunk or a run found, and what became of them."""

    found: int = 0  # order references read
    new: int = 0  # never reported: sent in a delivery report (or, in a dry run, to be sent)
    changed: int = 0  # reported, and different now: sent as an order update
    already_reported: int = 0  # SeQura holds them as they are: nothing to send
    quarantined: int = 0  # could not be reported: what is wrong and what to do is in the quarantine table
    sent: int = 0  # new orders SeQura accepted (or a settling update confirmed)
    updated: int = 0  # order updates SeQura accepted
    update_failed: int = 0  # order updates held: SeQura refused them, now or before, as the order stands
    unanswered: int = 0  # reports or order updates SeQura has not answered yet: the next run asks again
    cancelled: int = 0  # cancelled before shipment: told SeQura (or, in a dry run, to be told)
    not_at_sequra: int = 0  # cancelled before shipment, and SeQura has no approved order to cancel (404)

    def __add__(self, later: DeliveryCounts) -> DeliveryCounts:
        """Both counts added up, name by name."""
        return DeliveryCounts(
            **{name.name: getattr(self, name.name) + getattr(later, name.name) for name in fields(self)}
        )

    def row(self) -> dict[str, int]:
        """The counts as one table row, under their headings, as the counts artifact and backfills show it."""
        return {COUNT_HEADINGS[name]: value for name, value in asdict(self).items()}

    def in_words(self) -> str:
        """The counts as a log line says them, like `found 7, new 7, changed 0, already reported 0`."""
        return ", ".join(f"{heading.lower()} {value}" for heading, value in self.row().items())

    @classmethod
    def from_row(cls, row: Mapping[str, object]) -> DeliveryCounts:
        """The counts of a row `row()` made, or one by field name (before headings); a missing column is 0."""
        return cls(
            **{name: int(str(row.get(heading, row.get(name, 0)))) for name, heading in COUNT_HEADINGS.items()}
        )


COUNT_HEADINGS = {
    "found": "Found",
    "new": "New",
    "changed": "Changed",
    "already_reported": "Already reported",
    "quarantined": "Quarantined",
    "sent": "Sent",
    "updated": "Updated",
    "update_failed": "Updates held",
    "unanswered": "No answer yet",
    "cancelled": "Cancelled",
    "not_at_sequra": "Nothing to cancel",
}
"""Each count's column heading, in words, in the order of DeliveryCounts' fields."""
COUNT_COLUMNS = tuple(COUNT_HEADINGS.values())


@dataclass(frozen=True)
class DeliveryOutcome:
    """What one chunk, or a whole run, came to: its counts, its requests, and the first rows of each table."""

    counts: DeliveryCounts = field(default_factory=DeliveryCounts)
    requests: int = 0  # requests made to SeQura
    sent_rows: tuple[SentOrder, ...] = ()  # in a dry run: what would have been sent
    update_rows: tuple[UpdatedOrder, ...] = ()  # in a dry run: what would have been sent
    quarantined_rows: tuple[QuarantinedOrder, ...] = ()
    other_merchant: tuple[str, ...] = ()  # references left to another SeQura merchant, in words
    seconds: Mapping[str, float] = field(default_factory=dict)  # time spent per stage

    def __add__(self, later: DeliveryOutcome) -> DeliveryOutcome:
        """Both outcomes added up, keeping at most ROWS_SHOWN rows of each table."""
        return DeliveryOutcome(
            counts=self.counts + later.counts,
            requests=self.requests + later.requests,
            sent_rows=(self.sent_rows + later.sent_rows)[:ROWS_SHOWN],
            update_rows=(self.update_rows + later.update_rows)[:ROWS_SHOWN],
            quarantined_rows=(self.quarantined_rows + later.quarantined_rows)[:ROWS_SHOWN],
            other_merchant=(self.other_merchant + later.other_merchant)[:ROWS_SHOWN],
            seconds={
                stage: self.seconds.get(stage, 0.0) + later.seconds.get(stage, 0.0)
                for stage in {*self.seconds, *later.seconds}
            },
        )
