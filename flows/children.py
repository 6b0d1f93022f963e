"""A parent's children: which delivery report each one is, what it came to, and the parent's worst state.

A child that finished (Completed, Quarantined, AwaitingSeQura) has counts; one that did not has a problem,
and whether running it again can fix that with nobody acting. The parent (backfill, every-merchant) ends as
its worst child; its table and final message say each child in words, in lines the Prefect UI does not cut.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from prefect.states import Completed, State

from flows.alerts import AWAITING_SEQURA, QUARANTINED
from schemas.errors import SequraEtlError
from schemas.outcomes import COUNT_COLUMNS, DeliveryCounts
from schemas.shown import shown
from tasks.inert import markdown_cell, markdown_cell_lines
from tasks.window import Window, parse_moment

FINISHED = ("Completed", QUARANTINED, AWAITING_SEQURA)  # the results of a child that did its work


PROBLEM_SHOWN = 60  # characters of a child's problem its row shows: the whole of it is in the child's run


MESSAGE_SHOWN = 240  # characters of a child's problem a parent's final message shows


# Characters per line of the text columns of the parent's table: the five fit the 846 px the Prefect UI
# gives a table at 1400 px, which never wraps a cell by itself.
MERCHANT_WIDTH, WINDOW_WIDTH, RUN_WIDTH, WHAT_WIDTH = 13, 18, 18, 18


NAMED = 5  # children a parent's final message names; it counts the others


RAISED = re.compile(r"[^:]*: (?P<error>[A-Za-z_]\w*): ")
"""A failed run's state message as Prefect writes it: '<what Prefect says>: <error type>: <its message>'."""


@dataclass(frozen=True)
class ChildRun:
    """One delivery report to run: a merchant and a window (None: from the merchant's last run to now)."""

    merchant: str
    since: str | None = None
    until: str | None = None
    retry_quarantined: bool = True  # a backfill's last window of the merchant tries its quarantine again

    def window(self, timezone: str) -> str:
        """The window in the shop's time zone, e.g. 2026-11-20 01:00 → 2026-11-21 01:00 Europe/Madrid."""
        if self.since is None or self.until is None:
            return "since the last run"
        since, until = parse_moment("since", self.since), parse_moment("until", self.until)
        return Window(since, until).in_shop_time(timezone)

    def parameters(self, dry_run: bool) -> dict[str, object]:
        """The delivery-report flow's parameters for this child."""
        return {
            "since": self.since,
            "until": self.until,
            "dry_run": dry_run,
            "merchant": self.merchant,
            "retry_quarantined": self.retry_quarantined,
        }


@dataclass(frozen=True)
class ChildOutcome:
    """What one child run did: its counts, or why it did not finish."""

    merchant: str
    window: str
    run: str
    result: str
    counts: DeliveryCounts = field(default_factory=DeliveryCounts)
    problem: str = ""
    retryable: bool = False  # it did not finish, and running it again can fix that with nobody acting
    tries: int = 1
    run_id: uuid.UUID | None = None  # its Prefect flow run, which a new attempt runs again

    @property
    def failed(self) -> bool:
        """Whether the child ended without doing its work (Quarantined and AwaitingSeQura did it)."""
        return self.result not in FINISHED

    def row(self) -> dict[str, object]:
        """The child as a row of the terminal's table: merchant, window, run, result, each count, problem."""
        return {
            "Merchant": self.merchant,
            "Window": self.window,
            "Run": self.run,
            "Result": self.result,
            **self.counts.row(),
            "Problem": shown(self.why(), PROBLEM_SHOWN),
        }

    @classmethod
    def from_row(cls, row: Mapping[str, object]) -> ChildOutcome:
        """The child a row `row()` made: what a parent run on a worker tells the command that started it."""
        return cls(
            str(row["Merchant"]),
            str(row["Window"]),
            str(row["Run"]),
            str(row["Result"]),
            DeliveryCounts.from_row(row),
            problem=str(row["Problem"]),
        )

    def cells(self) -> dict[str, object]:
        """The child as a row of the parent's table in the UI: in words, in lines no wider than the view.

        What happened is its counts, one a line, when it finished, else the start of its problem.
        """
        said = [shown(self.why(), PROBLEM_SHOWN)] if self.failed else counted(self.counts)
        return {
            "Merchant": markdown_cell_lines(self.merchant, MERCHANT_WIDTH),
            "Window": markdown_cell_lines(self.window, WINDOW_WIDTH),
            "Run": markdown_cell_lines(self.run, RUN_WIDTH),
            "Result": markdown_cell(self.result),
            "What happened": "  \n".join(markdown_cell_lines(line, WHAT_WIDTH) for line in said),
        }

    def why(self) -> str:
        """Why the child did not finish, with its tries when it had more than one; '' when it finished."""
        if not self.failed:
            return ""
        return f"{self.tries} tries; {self.problem}" if self.tries > 1 else self.problem

    def said(self) -> str:
        """The child in a parent's final message: merchant, window, run, and its counts or why it failed."""
        what = shown(self.why(), MESSAGE_SHOWN) if self.failed else in_brief(self.counts)
        return f"{self.merchant} {self.window} ({self.run or 'not run'}): {what}"


def counted(counts: DeliveryCounts) -> list[str]:
    """The counts that are not 0 under their headings, like `3 found`, `2 sent`, `1 quarantined`."""
    return [f"{value:,} {heading.lower()}" for heading, value in counts.row().items() if value] or [
        "nothing found"
    ]


def in_brief(counts: DeliveryCounts) -> str:
    """The counts that are not 0, like `3 found, 2 sent, 1 quarantined`."""
    return ", ".join(counted(counts))


def named(outcomes: Sequence[ChildOutcome]) -> str:
    """The first NAMED children as a parent's message names them, and how many more there are."""
    said = "; ".join(outcome.said() for outcome in outcomes[:NAMED])
    return said + (f"; and {len(outcomes) - NAMED} more" if len(outcomes) > NAMED else "")


def parent_state(outcomes: Sequence[ChildOutcome]) -> State:
    """The parent's final state, the worst of its finished children's: Quarantined, AwaitingSeQura, Completed.

    Its message names the children of that state with their counts; its result is the outcomes. (A parent
    with a failed child fails: run_children raises.)
    """
    worst = (
        (
            QUARANTINED,
            "left orders in quarantine or order updates held",
            "each run's open quarantine says why",
        ),
        (AWAITING_SEQURA, "sent orders SeQura has not answered yet", "the next run asks SeQura again"),
    )
    for name, what, next_step in worst:
        these = [outcome for outcome in outcomes if outcome.result == name]
        if these:
            return Completed(
                name=name,
                message=f"{len(these)} of {len(outcomes)} delivery reports {what}: {named(these)}; "
                + next_step,
                data=list(outcomes),
            )
    total = sum((outcome.counts for outcome in outcomes), DeliveryCounts())
    return Completed(message=f"{len(outcomes)} delivery reports: {in_brief(total)}", data=list(outcomes))


def retryable_errors() -> frozenset[str]:
    """The names of the errors a new run can fix with nobody acting (`retryable`)."""
    names, kinds = set(), [SequraEtlError]
    while kinds:
        kind = kinds.pop()
        kinds += kind.__subclasses__()
        if kind.retryable:
            names.add(kind.__name__)
    return frozenset(names)


def retryable_failure(state: State) -> bool:
    """Whether a child that did not finish can finish if run again with nobody acting.

    So it can when its run died (Crashed), or failed with an error whose `retryable` says so (its merchant's
    lock held, SeQura unavailable), which Prefect names in the state's message: the same on the workers and
    here. A failure a person must fix (401/403 from SeQura, a setting, a parameter), a timeout, a cancel or an
    error nobody anticipated cannot.
    """
    if state.is_crashed():
        return True
    found = RAISED.match(state.message or "")
    return state.is_failed() and found is not None and found["error"] in retryable_errors()


def failed_outcome(child: ChildRun, timezone: str, run: str, state: State) -> ChildOutcome:
    """The outcome of a child whose run did not finish: its state, its error, and whether to try again."""
    message = state.message or ""
    found = RAISED.match(message)
    return ChildOutcome(
        child.merchant,
        child.window(timezone),
        run,
        str(state.name),
        problem=message[found.start("error") :] if found else message,
        retryable=retryable_failure(state),
    )


def not_run(child: ChildRun, timezone: str) -> ChildOutcome:
    """The outcome of a window left alone because an earlier window of its merchant failed for good."""
    return ChildOutcome(
        child.merchant,
        child.window(timezone),
        "",
        "Not run",
        problem="an earlier window of this merchant failed; run the same command again",
    )


def outcomes_markdown(outcomes: Sequence[ChildOutcome]) -> str:
    """The children's outcomes as a markdown table, with a total line, for the terminal."""
    columns = ("Merchant", "Window", "Result", *COUNT_COLUMNS)
    lines = [
        "| " + " | ".join(columns) + " |",
        "|" + "---|" * 3 + "---:|" * len(COUNT_COLUMNS),
    ]
    lines += ["| " + " | ".join(str(o.row()[column]) for column in columns) + " |" for o in outcomes]
    total = sum((o.counts for o in outcomes), DeliveryCounts()).row()
    totals = [str(total[column]) for column in COUNT_COLUMNS]
    lines.append(f"| **{len(outcomes)} runs** | | | " + " | ".join(totals) + " |")
    return "\n".join(lines)
