"""Where a result came from: package, commit, library versions and machine (issue 18).

Every run folder's ``params.json`` and every checkpoint carry :func:`provenance`,
so a number can be traced to the code and kernels that produced it (DESIGN §4.8).
"""

from __future__ import annotations

import functools
import platform
import subprocess
from pathlib import Path

__all__ = ["provenance", "git_commit"]


@functools.lru_cache(maxsize=1)
def git_commit() -> str | None:
    """The checkout's commit (``+dirty`` when files differ), or ``None`` outside a checkout."""
    root = Path(__file__).resolve().parents[1]
    if not (root / ".git").exists():
        return None
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True,
                              text=True, timeout=10, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
                               capture_output=True, text=True, timeout=10, check=True).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return f"{head}+dirty" if dirty else head


def provenance() -> dict[str, str | None]:
    """wslbench version, git commit, torch and Python versions, platform and CPU kernel level."""
    import torch

    from wslbench import __version__

    return {
        "wslbench": __version__,
        "git_commit": git_commit(),
        "torch": str(torch.__version__),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu_capability": str(torch.backends.cpu.get_cpu_capability()),
    }
