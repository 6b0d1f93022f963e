from __future__ import annotations

from tasks.rows import in_chunks


def test_chunks_hold_at_most_their_size_and_keep_the_order() -> None:
    assert in_chunks(list(range(7)), 3) == [[0, 1, 2], [3, 4, 5], [6]]


def test_no_items_make_no_chunk() -> None:
    assert in_chunks([], 500) == []
