"""The event catalogue and store. ``from events import emit`` is the producers' entry point.

``events.emit`` is ``events.services.emit`` itself, with its signature and docstring (for
``help()``, editors and mypy). It is looked up on first use (PEP 562) because
``events.services`` needs Django's apps ready, and ``import events`` must work before that.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from events.services import emit

__all__ = ["emit"]


def __getattr__(name: str) -> Any:
    if name == "emit":
        from events.services import emit

        return emit
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
