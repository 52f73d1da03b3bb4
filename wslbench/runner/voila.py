"""Serving the dashboards with Voila: localhost only, one folder only.

``wslbench dashboards`` calls :func:`serve`; the browser tests start the same
command line through :func:`voila_argv` with tracebacks shown. Voila runs through
:mod:`wslbench.runner.voila_main`, which keeps a lost socket wake-up from stalling a page.
"""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

from wslbench.errors import DataNotFoundError

__all__ = ["voila_argv", "serve", "find_free_port", "MAX_UPLOAD_BYTES"]

# Largest request body Tornado accepts (uploads are size-limited again in the dashboards).
MAX_UPLOAD_BYTES = 64 * 1024 * 1024


def find_free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that is free on ``host`` right now."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def voila_argv(
    root: str | Path,
    *,
    host: str = "127.0.0.1",
    port: int = 8866,
    show_tracebacks: bool = False,
    cull_idle_s: int = 300,
) -> list[str]:
    """Command line serving the notebooks of ``root`` (and nothing above it) with Voila.

    Kernels of pages closed for ``cull_idle_s`` seconds are culled, so a long
    session does not accumulate kernels (DESIGN §7).
    """
    root = Path(root).resolve()
    if not root.is_dir():
        raise DataNotFoundError(f"dashboards folder {root} does not exist; expected a folder of notebooks")
    return [
        # Voila itself, with the guard against lost ZeroMQ wake-ups (see voila_main)
        sys.executable, "-m", "wslbench.runner.voila_main", str(root),
        "--no-browser",
        f"--Voila.ip={host}",
        f"--port={port}",
        "--theme=light",
        f"--show_tracebacks={show_tracebacks}",
        f"--MappingKernelManager.cull_idle_timeout={cull_idle_s}",
        "--MappingKernelManager.cull_interval=60",
        "--MappingKernelManager.cull_connected=False",
        f"--Voila.tornado_settings={{'max_body_size': {MAX_UPLOAD_BYTES}, 'max_buffer_size': {MAX_UPLOAD_BYTES}, "
        f"'websocket_max_message_size': {MAX_UPLOAD_BYTES}}}",
        "--VoilaConfiguration.file_allowlist=[]",
    ]


def serve(
    root: str | Path, *, host: str = "127.0.0.1", port: int = 8866, show_tracebacks: bool = False
) -> int:
    """Run Voila in the foreground until interrupted; returns its exit code."""
    argv = voila_argv(root, host=host, port=port, show_tracebacks=show_tracebacks)
    print(f"wslbench: dashboards on http://{host}:{port}/ (Ctrl-C to stop)", flush=True)
    try:
        return subprocess.call(argv)
    except KeyboardInterrupt:
        return 0
