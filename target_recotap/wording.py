"""How the log words counts and lists."""

from __future__ import annotations

from collections.abc import Iterable


def plural(count: int, one: str, many: str | None = None) -> str:
    """``count`` with ``one`` or ``many`` (``one`` + s by default): "1 request", "3 requests"."""
    return f"{count} {one if count == 1 else many or one + 's'}"


def listing(names: Iterable[str]) -> str:
    """Names joined as a sentence lists them: "a", "a and b", "a, b and c"."""
    *most, last = names
    return f"{', '.join(most)} and {last}" if most else last
