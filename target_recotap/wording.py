"""How the log words counts."""

from __future__ import annotations


def plural(count: int, one: str, many: str | None = None) -> str:
    """``count`` with ``one`` or ``many`` (``one`` + s by default): "1 request", "3 requests"."""
    return f"{count} {one if count == 1 else many or one + 's'}"
