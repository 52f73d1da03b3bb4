"""Helpers for tests that start ``wslbench`` in a child process."""

from __future__ import annotations

import signal


def default_sigint() -> None:
    """``preexec_fn``: the child must see SIGINT even when pytest runs as a background job,
    whose shell hands SIG_IGN to it and every child (Python then installs no
    KeyboardInterrupt handler, and a signalled run would go on to succeed)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
