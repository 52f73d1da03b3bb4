"""Typed experiment presets: ``smoke`` (seconds), ``demo`` (minutes), ``paper`` (exact).

Each experiment declares one dataclass of hyper-parameters and a
:class:`PresetTable` holding its three presets as *data*. Parameters coming
from papermill, the CLI or a grid override preset fields with type checking;
an unknown name or a wrong type raises :class:`~wslbench.errors.ConfigError`.

>>> @dataclass(frozen=True)
... class Toy:
...     size: int = 64
...     nu: float = 0.0
>>> TOY = PresetTable(Toy, smoke=Toy(size=32), demo=Toy(), paper=Toy(size=512))
>>> TOY.build("smoke", nu=1e-3)
Toy(size=32, nu=0.001)
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Mapping
from typing import Any, Generic, Literal, TypeVar, get_args, get_origin

from wslbench.errors import ConfigError

__all__ = ["PRESET_NAMES", "PresetTable", "coerce_value", "config_to_dict"]

PRESET_NAMES = ("smoke", "demo", "paper")

C = TypeVar("C")


def _type_name(hint: Any) -> str:
    return getattr(hint, "__name__", None) or str(hint).replace("typing.", "")


def coerce_value(name: str, value: Any, hint: Any) -> Any:
    """Check ``value`` against the type ``hint`` of field ``name`` and return it.

    Allowed conversions are the lossless ones a user expects: int → float,
    list → tuple, a whole float (3.0) → int. Anything else raises ConfigError.
    """
    origin = get_origin(hint)
    if hint is Any:
        return value
    if origin is typing.Union or origin is types.UnionType:
        errors = []
        for option in get_args(hint):
            if option is type(None):
                if value is None:
                    return None
                continue
            try:
                return coerce_value(name, value, option)
            except ConfigError as exc:
                errors.append(str(exc))
        raise ConfigError(f"parameter {name!r}: got {value!r}, expected {_type_name(hint)}")
    if origin is Literal:
        allowed = get_args(hint)
        if value not in allowed:
            raise ConfigError(
                f"parameter {name!r}: got {value!r}, expected one of {', '.join(map(repr, allowed))}"
            )
        return value
    if origin in (tuple, list):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(
                f"parameter {name!r}: got {value!r}, expected a sequence ({_type_name(hint)})"
            )
        args = get_args(hint)
        if origin is tuple and args and args[-1] is not Ellipsis:
            if len(args) != len(value):
                raise ConfigError(
                    f"parameter {name!r}: got {len(value)} values, expected {len(args)}"
                )
            items = [coerce_value(name, v, a) for v, a in zip(value, args)]
        else:
            item_hint = args[0] if args else Any
            items = [coerce_value(name, v, item_hint) for v in value]
        return tuple(items) if origin is tuple else items
    if origin is dict:
        if not isinstance(value, Mapping):
            raise ConfigError(f"parameter {name!r}: got {value!r}, expected a mapping")
        return dict(value)
    if hint is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"parameter {name!r}: got {value!r}, expected true or false")
    if hint is int:
        if isinstance(value, bool):
            raise ConfigError(f"parameter {name!r}: got {value!r}, expected an integer")
        if isinstance(value, int):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        raise ConfigError(f"parameter {name!r}: got {value!r}, expected an integer")
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"parameter {name!r}: got {value!r}, expected a number")
        return float(value)
    if hint is str:
        if not isinstance(value, str):
            raise ConfigError(f"parameter {name!r}: got {value!r}, expected a string")
        return value
    if isinstance(hint, type) and not isinstance(value, hint):
        raise ConfigError(f"parameter {name!r}: got {value!r}, expected {_type_name(hint)}")
    return value


class PresetTable(Generic[C]):
    """The ``smoke`` / ``demo`` / ``paper`` presets of one experiment config class.

    Args:
        config_cls: a (frozen) dataclass of hyper-parameters.
        smoke: seconds-scale preset for tests and CI.
        demo: minutes-scale preset on 2 CPU cores.
        paper: the paper's exact sizes and hyper-parameters (GPU users).
    """

    def __init__(self, config_cls: type[C], *, smoke: C, demo: C, paper: C) -> None:
        if not dataclasses.is_dataclass(config_cls):
            raise ConfigError(f"{config_cls!r} is not a dataclass")
        self.config_cls = config_cls
        self.presets: dict[str, C] = {"smoke": smoke, "demo": demo, "paper": paper}
        self._hints = typing.get_type_hints(config_cls)

    def field_names(self) -> list[str]:
        """Names of the configurable fields."""
        return [f.name for f in dataclasses.fields(self.config_cls)]

    def field_hints(self) -> dict[str, Any]:
        """Type hint of every configurable field, by name."""
        return {name: self._hints[name] for name in self.field_names()}

    def build(self, preset: str = "demo", /, **overrides: Any) -> C:
        """The preset ``preset`` with ``overrides`` applied (``None`` values are ignored).

        ``None`` means "keep the preset's value", so a notebook's parameters cell
        can default every field to ``None`` and only what the user sets changes.
        """
        if preset not in self.presets:
            raise ConfigError(
                f"unknown preset {preset!r}; expected one of: {', '.join(self.presets)}"
            )
        base = self.presets[preset]
        fields = set(self.field_names())
        unknown = sorted(set(overrides) - fields)
        if unknown:
            raise ConfigError(
                f"unknown parameter(s) {', '.join(unknown)} for {self.config_cls.__name__}; "
                f"expected some of: {', '.join(sorted(fields))}"
            )
        changes = {
            k: coerce_value(k, v, self._hints[k]) for k, v in overrides.items() if v is not None
        }
        return dataclasses.replace(base, **changes)


def config_to_dict(config: Any) -> dict[str, Any]:
    """A JSON-friendly dict of a config dataclass (tuples become lists)."""
    if not dataclasses.is_dataclass(config):
        raise ConfigError(f"expected a dataclass config, got {type(config).__name__}")
    return dataclasses.asdict(config)
