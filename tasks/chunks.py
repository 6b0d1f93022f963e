"""Chunks: split long lists so that no query's IN list and no request grows without bound."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeVar

Item = TypeVar("Item")


def in_chunks(items: Sequence[Item], size: int) -> list[Sequence[Item]]:
    """`items` in order, in slices of at most `size`."""
    return [items[start : start + size] for start in range(0, len(items), size)]
