"""The event catalogue and store. ``from events import emit`` is the producers' entry point."""

from typing import Any


def emit(*args: Any, **kwargs: Any) -> Any:
    # Imported lazily so that ``import events`` works before Django's apps are ready.
    from events.services import emit as _emit

    return _emit(*args, **kwargs)
