"""Find notebooks by name and read their ``parameters`` cell."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from wslbench.errors import ConfigError, DataFormatError, DataNotFoundError

__all__ = ["notebooks_root", "list_notebooks", "resolve_notebook", "notebook_parameters"]


def notebooks_root() -> Path:
    """The ``notebooks/`` folder: ``$WSLBENCH_NOTEBOOKS``, the checkout's, or ``./notebooks``."""
    env = os.environ.get("WSLBENCH_NOTEBOOKS")
    if env:
        return Path(env)
    checkout = Path(__file__).resolve().parents[2] / "notebooks"
    return checkout if checkout.is_dir() else Path.cwd() / "notebooks"


def list_notebooks(root: Path | None = None, dashboards: bool = False) -> list[Path]:
    """Paper notebooks in ``root`` (sorted), or the dashboards when ``dashboards``."""
    root = notebooks_root() if root is None else root
    folder = root / "dashboards" if dashboards else root
    return sorted(p for p in folder.glob("*.ipynb") if not p.name.startswith("."))


def resolve_notebook(name: str | Path, root: Path | None = None) -> Path:
    """A notebook path from a path, a stem (``01_dr_heatmaps``) or a unique prefix (``01``)."""
    path = Path(name)
    if path.suffix == ".ipynb" and path.is_file():
        return path.resolve()
    root = notebooks_root() if root is None else root
    candidates = list_notebooks(root) + list_notebooks(root, dashboards=True)
    stem = path.stem if path.suffix == ".ipynb" else str(name)
    exact = [p for p in candidates if p.stem == stem]
    if exact:
        return exact[0].resolve()
    prefixed = [p for p in candidates if p.stem.startswith(stem)]
    if len(prefixed) == 1:
        return prefixed[0].resolve()
    known = ", ".join(p.stem for p in candidates) or "(none)"
    if len(prefixed) > 1:
        raise ConfigError(f"notebook name {name!r} is ambiguous; expected one of: {known}")
    raise DataNotFoundError(f"unknown notebook {name!r}; expected a .ipynb path or one of: {known}")


def notebook_parameters(path: Path) -> dict[str, Any]:
    """Names and default values of the notebook's ``parameters`` cell."""
    import papermill

    try:
        info = papermill.inspect_notebook(str(path))
    except Exception as exc:  # nbformat/papermill raise many types on a broken file
        raise DataFormatError(f"cannot read notebook {path}: {exc}") from exc
    if not info:
        raise DataFormatError(f"notebook {path} has no cell tagged 'parameters'")
    return {name: spec.get("default") for name, spec in info.items()}


def notebook_config_table(path: Path) -> Any | None:
    """The :class:`~wslbench.presets.PresetTable` a notebook's parameters configure.

    Declared in the notebook's metadata as ``{"wslbench": {"config": "module:NAME"}}``;
    ``None`` for notebooks without one (dashboards, user notebooks).
    """
    import importlib

    import nbformat

    from wslbench.presets import PresetTable

    try:
        meta = nbformat.read(str(path), as_version=4).metadata.get("wslbench", {})
    except Exception as exc:  # nbformat raises many types on a broken file
        raise DataFormatError(f"cannot read notebook {path}: {exc}") from exc
    target = meta.get("config")
    if target is None:
        return None
    module, _, name = str(target).partition(":")
    try:
        table = getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError) as exc:
        raise DataFormatError(
            f"notebook {path.name} declares config {target!r}, which does not exist; "
            "expected 'module:PRESET_TABLE'"
        ) from exc
    if not isinstance(table, PresetTable):
        raise DataFormatError(f"notebook {path.name}: {target!r} is not a PresetTable")
    return table


def check_parameters(path: Path, params: dict[str, Any]) -> dict[str, Any]:
    """``params`` checked against the notebook before anything is written.

    Names must be in the ``parameters`` cell; ``preset`` must be a preset name;
    a field of the notebook's preset table (:func:`notebook_config_table`) must
    have that field's type; any other parameter must have the type of its
    default literal (``None`` defaults take a string or ``None``).

    Raises:
        ConfigError: naming the parameter, the value and what is expected.
    """
    import ast

    from wslbench.presets import PRESET_NAMES, coerce_value

    defaults = notebook_parameters(path)
    unknown = sorted(set(params) - set(defaults))
    if unknown:
        raise ConfigError(
            f"unknown parameter(s) {', '.join(unknown)} for {path.stem}; "
            f"expected some of: {', '.join(sorted(defaults))}"
        )
    table = notebook_config_table(path)
    hints = table.field_hints() if table is not None else {}
    for name, value in params.items():
        if name == "preset":
            if value not in PRESET_NAMES:
                raise ConfigError(
                    f"parameter 'preset': got {value!r}, expected one of: {', '.join(PRESET_NAMES)}"
                )
        elif name in hints:
            if value is not None:
                coerce_value(name, value, hints[name])
        else:
            try:
                default = ast.literal_eval(str(defaults[name]))
            except (ValueError, SyntaxError):
                continue  # a default that is an expression: papermill passes the value as is
            _check_like_default(name, value, default)
    return params


def _check_like_default(name: str, value: Any, default: Any) -> None:
    from wslbench.presets import coerce_value

    if default is None:
        if value is not None and not isinstance(value, str):
            raise ConfigError(f"parameter {name!r}: got {value!r}, expected a string or null")
    elif isinstance(default, list):
        kinds = {type(v) for v in default}
        item = float if kinds <= {int, float} and float in kinds else (kinds.pop() if len(kinds) == 1 else Any)
        coerce_value(name, value, list[item])
    else:
        coerce_value(name, value, type(default))
