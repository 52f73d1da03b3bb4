"""Voila's entry point with the lost-wake-up guard (``python -m wslbench.runner.voila_main``).

Voila itself, after :func:`wslbench.runner.zmq_wakeup.install_wakeup_guard`: without it a
busy machine left dashboard pages at "Executing n of m" for ever (see that module).
"""

from __future__ import annotations

import sys

from wslbench.runner.zmq_wakeup import install_wakeup_guard

__all__ = ["main"]


def main(argv: list[str] | None = None) -> int:
    """Run Voila with the guard installed; ``argv`` are Voila's own arguments."""
    install_wakeup_guard()
    from voila.app import main as voila_main

    sys.argv = ["voila", *(sys.argv[1:] if argv is None else argv)]
    return voila_main() or 0


if __name__ == "__main__":
    sys.exit(main())
