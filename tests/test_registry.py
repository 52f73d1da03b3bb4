from __future__ import annotations

import pytest

from wslbench.errors import ConfigError
from wslbench.registry import Registry


def test_register_create_and_errors():
    reg: Registry[object] = Registry("widget")

    @reg.register("Alpha")
    class Alpha:
        def __init__(self, q: int = 1) -> None:
            self.q = q

    assert reg.names() == ["alpha"] and "ALPHA" in reg and len(reg) == 1
    assert reg.create("alpha", q=3).q == 3
    with pytest.raises(ConfigError, match="unknown widget 'beta'; expected one of: alpha"):
        reg.get("beta")
    with pytest.raises(ConfigError, match="widget 'alpha'"):
        reg.create("alpha", qq=3)
    with pytest.raises(ConfigError, match="registered twice"):
        reg.register("alpha")(object)
