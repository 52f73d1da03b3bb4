from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from wslbench.errors import ConfigError
from wslbench.presets import PresetTable, config_to_dict


@dataclass(frozen=True)
class Toy:
    size: int = 64
    nu: float = 0.0
    criterion: str = "pi"
    sizes: tuple[int, ...] = (1, 2)
    flag: bool = False
    maybe: float | None = None
    extra: dict = field(default_factory=dict)


TOY = PresetTable(Toy, smoke=Toy(size=32), demo=Toy(), paper=Toy(size=512))


def test_build_applies_overrides_and_ignores_none():
    cfg = TOY.build("smoke", nu=1e-3, criterion=None)
    assert cfg.size == 32 and cfg.nu == 1e-3 and cfg.criterion == "pi"
    assert TOY.build("paper").size == 512


def test_int_to_float_and_list_to_tuple_are_accepted():
    cfg = TOY.build("demo", nu=1, sizes=[3, 4], maybe=2)
    assert isinstance(cfg.nu, float) and cfg.sizes == (3, 4) and cfg.maybe == 2.0


@pytest.mark.parametrize(
    "overrides, fragment",
    [
        ({"sise": 3}, "unknown parameter(s) sise"),
        ({"size": "big"}, "expected an integer"),
        ({"size": 2.5}, "expected an integer"),
        ({"flag": 1}, "expected true or false"),
        ({"nu": "x"}, "expected a number"),
        ({"sizes": 3}, "expected a sequence"),
    ],
)
def test_bad_overrides_raise_config_error(overrides, fragment):
    with pytest.raises(ConfigError, match=fragment.replace("(", r"\(").replace(")", r"\)")):
        TOY.build("demo", **overrides)


def test_unknown_preset_lists_valid_ones():
    with pytest.raises(ConfigError, match="smoke, demo, paper"):
        TOY.build("huge")


def test_config_to_dict_roundtrip():
    d = config_to_dict(TOY.build("smoke"))
    assert d["size"] == 32 and TOY.build("demo", **{k: v for k, v in d.items() if k != "extra"}) == TOY.build("smoke")
