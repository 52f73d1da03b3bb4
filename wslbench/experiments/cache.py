"""One memo for experiment results: bounded, clearable, and never holding a cancelled result.

The notebooks' sliders move back and forth between values (ν, λ_s, β₁…), so each
experiment memoises its trainings and masks by the *resolved* configuration (plus
what else the result depends on, e.g. a fold) and by the data object it was
computed on. Every memo is an :class:`ExperimentCache`: least recently used entries
leave once ``maxsize`` is reached, :func:`clear_caches` empties all of them, and a
result whose ``interrupted`` attribute is true (cancelled through a progress
callback) is returned to the caller but never stored, so a rerun computes it in full.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Any, TypeVar

from wslbench.validation import check_int

__all__ = ["ExperimentCache", "clear_caches", "list_caches"]

T = TypeVar("T")
_log = logging.getLogger("wslbench")
_CACHES: list[ExperimentCache] = []


class ExperimentCache:
    """A least-recently-used memo of ``key → result`` bound to the data it was computed on.

    Args:
        name: shown by :func:`list_caches` and in log messages.
        maxsize: most entries kept (models can be large: keep it small).
    """

    def __init__(self, name: str, maxsize: int = 16) -> None:
        self.name = name
        self.maxsize = check_int("maxsize", maxsize)
        self._items: OrderedDict[Hashable, tuple[Any, Any]] = OrderedDict()
        _CACHES.append(self)

    def get_or_compute(self, key: Hashable, data: object, compute: Callable[[], T]) -> T:
        """The stored result for ``key`` computed on this very ``data``, else ``compute()``."""
        hit = self._items.get(key)
        if hit is not None and hit[0] is data:
            self._items.move_to_end(key)
            return hit[1]
        result = compute()
        if getattr(result, "interrupted", False):
            _log.info("%s: interrupted result returned, not cached", self.name)
            return result
        self._items[key] = (data, result)
        self._items.move_to_end(key)
        while len(self._items) > self.maxsize:
            self._items.popitem(last=False)
        return result

    def clear(self) -> None:
        """Forget every entry."""
        self._items.clear()

    def __len__(self) -> int:
        return len(self._items)

    def __repr__(self) -> str:
        return f"ExperimentCache({self.name!r}, {len(self)}/{self.maxsize})"


def list_caches() -> list[ExperimentCache]:
    """Every experiment cache of this process."""
    return list(_CACHES)


def clear_caches() -> None:
    """Empty every experiment cache (frees the models they hold)."""
    for cache in _CACHES:
        cache.clear()
