"""Text from outside (the shop, a corrections file, SeQura) as a message shows it: short, one line, inert."""

from __future__ import annotations

SHOWN = 40
"""Characters of a value from outside (a key, a cell, an order reference) that a message shows."""


def shown(text: str, limit: int = SHOWN) -> str:
    r"""`text` as a message shows it: its first `limit` characters on one line, '…' when it goes on.

    Every character that is not printable (a line break, a tab, a control or invisible character, a byte
    that was not UTF-8) is escaped as Python writes it (\n, \x00, \u200b), never carried raw.
    """
    cut = text[:limit]
    safe = cut if cut.isprintable() else "".join(c if c.isprintable() else repr(c)[1:-1] for c in cut)
    return safe + ("…" if len(text) > limit else "")
