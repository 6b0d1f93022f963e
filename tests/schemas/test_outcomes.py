"""What a run came to, as the counts table shows it and a backfill reads it back."""

from __future__ import annotations

from schemas.outcomes import COUNT_COLUMNS, DeliveryCounts


def test_the_counts_table_has_headings_in_words_and_reads_back_as_the_same_counts() -> None:
    counts = DeliveryCounts(
        found=9, new=5, changed=1, already_reported=3, sent=4, update_failed=1, unanswered=1
    )
    row = counts.row()
    assert list(row) == list(COUNT_COLUMNS)
    assert all("_" not in heading and heading[0].isupper() for heading in row)
    assert (row["Already reported"], row["Updates held"], row["No answer yet"]) == (3, 1, 1)
    assert DeliveryCounts.from_row(row) == counts
    assert counts.in_words().startswith(
        "found 9, new 5, changed 1, already reported 3, quarantined 0, sent 4"
    )


def test_a_counts_row_published_before_the_headings_reads_back_by_its_field_names() -> None:
    assert DeliveryCounts.from_row({"found": 2, "sent": 2, "already_reported": 0}) == DeliveryCounts(
        found=2, sent=2
    )
