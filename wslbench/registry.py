"""Name → factory registries (timm style), one per family.

>>> POOLING = Registry("pooling head")
>>> @POOLING.register("gap")
... class GlobalAveragePooling: ...
>>> POOLING.create("gap")            # doctest: +SKIP

Unknown names raise :class:`~wslbench.errors.ConfigError` listing the valid ones.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterator
from typing import Any, Generic, TypeVar

from wslbench.errors import ConfigError

__all__ = ["Registry"]

T = TypeVar("T")


def _signature(factory: Callable[..., object]) -> str:
    """The factory's parameter list for error messages (``(...)`` when unavailable)."""
    try:
        return str(inspect.signature(factory).replace(return_annotation=inspect.Signature.empty))
    except (TypeError, ValueError):
        return "(...)"


class Registry(Generic[T]):
    """A named collection of factories (classes or functions) of one family.

    Args:
        family: human name of the family, used in error messages ("pooling head").
    """

    def __init__(self, family: str) -> None:
        self.family = family
        self._entries: dict[str, Callable[..., T]] = {}

    def register(self, name: str) -> Callable[[Callable[..., T]], Callable[..., T]]:
        """Decorator adding a factory under ``name`` (lower-case, unique)."""
        key = name.lower()

        def decorator(factory: Callable[..., T]) -> Callable[..., T]:
            if key in self._entries and self._entries[key] is not factory:
                raise ConfigError(f"{self.family} {key!r} is registered twice")
            self._entries[key] = factory
            return factory

        return decorator

    def get(self, name: str) -> Callable[..., T]:
        """Return the factory registered under ``name``."""
        if not isinstance(name, str):
            raise ConfigError(
                f"{self.family} name must be a string, got {type(name).__name__}; expected one "
                f"of: {', '.join(self.names())}"
            )
        key = name.lower()
        if key not in self._entries:
            raise ConfigError(
                f"unknown {self.family} {name!r}; expected one of: {', '.join(self.names())}"
            )
        return self._entries[key]

    def create(self, name: str, *args: Any, **kwargs: Any) -> T:
        """Build the entry ``name`` with the given arguments."""
        factory = self.get(name)
        try:
            return factory(*args, **kwargs)
        except TypeError as exc:  # misspelled keyword: say which entry rejected it
            raise ConfigError(
                f"{self.family} {name!r}: {exc}; expected arguments {_signature(factory)}"
            ) from exc

    def names(self) -> list[str]:
        """Sorted list of the registered names."""
        return sorted(self._entries)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.lower() in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self._entries)
