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
