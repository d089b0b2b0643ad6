"""The event catalogue and store. ``from events import emit, emit_many`` are the producers' entry points.

``events.emit`` and ``events.emit_many`` are ``events.services.emit`` and ``emit_many``
themselves, with their signatures and docstrings (for ``help()``, editors and mypy). They are
looked up on first use (PEP 562) because ``events.services`` needs Django's apps ready, and
``import events`` must work before that.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from events.services import emit, emit_many

__all__ = ["emit", "emit_many"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from events import services

        return getattr(services, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
