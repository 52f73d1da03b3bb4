"""Dashboards exposure (issue 10, item 4): Voila on 127.0.0.1, one folder, nothing else.

The unit tests check :func:`voila_argv` / :func:`serve` / ``wslbench dashboards``
defaults; the live test starts the real server on ``notebooks/dashboards`` (the
``voila_server`` harness of the browser tests, no browser needed) and asks for
``../``-style, encoded and absolute paths, the Jupyter server APIs and the files
of the served folder itself: nothing outside ``notebooks/dashboards`` comes back.
"""

from __future__ import annotations

import json
import socket
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from wslbench import cli
from wslbench.errors import DataNotFoundError
from wslbench.runner import voila
from wslbench.runner.voila import MAX_UPLOAD_BYTES, voila_argv

ROOT = Path(__file__).resolve().parents[1]
DASHBOARDS = ROOT / "notebooks" / "dashboards"
#: Text only found in files outside the dashboards folder (README, pyproject, a paper
#: notebook, /etc/passwd, this test).
OUTSIDE_MARKERS = ("[project]", "root:x:0:0", "01_dr_heatmaps", "OUTSIDE_MARKERS",
                   "Weakly supervised histology")


def _option(argv: list[str], name: str) -> str:
    (value,) = [a.split("=", 1)[1] for a in argv if a.startswith(f"--{name}=")]
    return value


def test_argv_defaults_are_localhost_one_folder_no_tracebacks_no_files() -> None:
    argv = voila_argv(DASHBOARDS)
    assert _option(argv, "Voila.ip") == "127.0.0.1"
    assert _option(argv, "show_tracebacks") == "False"
    assert _option(argv, "VoilaConfiguration.file_allowlist") == "[]"
    assert str(MAX_UPLOAD_BYTES) in _option(argv, "Voila.tornado_settings")
    assert int(_option(argv, "MappingKernelManager.cull_idle_timeout")) > 0
    served = [a for a in argv[3:] if not a.startswith("--")]
    assert served == [str(DASHBOARDS.resolve())], "exactly one served folder"


def test_argv_resolves_dot_dot_and_refuses_a_missing_folder(tmp_path: Path) -> None:
    argv = voila_argv(DASHBOARDS / ".." / "dashboards")
    assert str(DASHBOARDS.resolve()) in argv and ".." not in " ".join(argv)
    with pytest.raises(DataNotFoundError, match="does not exist"):
        voila_argv(tmp_path / "absent")


def test_serve_and_cli_default_to_localhost(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[list[str]] = []
    monkeypatch.setattr(voila.subprocess, "call", lambda argv: seen.append(argv) or 0)
    assert voila.serve(DASHBOARDS) == 0
    assert cli.main(["dashboards"]) == 0
    for argv in seen:
        assert _option(argv, "Voila.ip") == "127.0.0.1"
        assert _option(argv, "show_tracebacks") == "False"
    assert [a for a in seen[1][3:] if not a.startswith("--")] == [str(DASHBOARDS.resolve())]


def test_summary_plot_names_cannot_escape_the_runs_folder(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A user-given metric name is never joined into a path outside the runs folder."""
    runs = tmp_path / "runs"
    runs.mkdir()
    code = cli.main(["summary", str(runs), "--plot", "../../evil", "--by", "/etc/x"])
    assert code == 2 and "unknown metric" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["runs"]
    run = runs / "nb" / "r1"  # a run whose recorded metric name looks like a path
    run.mkdir(parents=True)
    (run / "params.json").write_text(json.dumps({"notebook": "nb.ipynb", "parameters": {"x": 1}}))
    (run / "status.json").write_text(json.dumps({"status": "succeeded", "duration_s": 1.0}))
    (run / "metrics.json").write_text(json.dumps({"../../evil": 0.5}))
    assert cli.main(["summary", str(runs), "--plot", "../../evil", "--by", "x"]) == 0
    (figure,) = tmp_path.rglob("*.png")
    assert figure.parent == runs and ".." not in figure.name


# --------------------------------------------------------------------------- live server


def _get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=30) as response:
            return response.status, response.read().decode("utf-8", "replace")
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode("utf-8", "replace")


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    from tests.browser import voila_server

    with voila_server(DASHBOARDS) as url:
        yield url


PROBES = [
    "/voila/files/../../README.md",
    "/voila/files/%2e%2e/%2e%2e/README.md",
    "/voila/files/%2E%2E%2F%2E%2E%2Fpyproject.toml",
    "/voila/files//etc/passwd",
    "/voila/files/%2Fetc%2Fpasswd",
    f"/voila/files/{ROOT}/README.md",
    "/voila/files/case_viewer.ipynb",
    "/voila/render/../01_dr_heatmaps.ipynb",
    "/voila/render/%2e%2e/01_dr_heatmaps.ipynb",
    f"/voila/render/{ROOT}/notebooks/01_dr_heatmaps.ipynb",
    "/voila/tree/..",
    "/voila/tree/%2e%2e",
    "/voila/static/%2e%2e/%2e%2e/README.md",
    "/static/../../README.md",
    "/tree/..",
    "/tree",
    "/files/../README.md",
    "/api/contents",
    "/api/contents/..",
    "/api/contents/%2e%2e",
    "/api/kernels",
    "/api/sessions",
    "/api/kernelspecs",
    "/api/terminals",
    "/terminals/1",
    "/lab",
    "/edit/case_viewer.ipynb",
    "/notebooks/case_viewer.ipynb",
]


@pytest.mark.xdist_group("kernels")
def test_live_voila_serves_nothing_outside_the_dashboards_folder(server: str) -> None:
    status, listing = _get(server + "/")
    assert status == 200 and "voila-tree-main" in listing
    assert not [m for m in OUTSIDE_MARKERS if m in listing], "the listing shows only dashboards"
    leaks = []
    for path in PROBES:
        status, body = _get(server + path)
        if status < 400 or any(m in body for m in OUTSIDE_MARKERS):
            leaks.append(f"{path}: HTTP {status}, {body[:80]!r}")
    assert not leaks, "served outside notebooks/dashboards:\n" + "\n".join(leaks)


def _public_address() -> str | None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        try:
            sock.connect(("192.0.2.1", 9))  # UDP connect sends nothing: picks the outgoing address
        except OSError:
            return None
        address = sock.getsockname()[0]
    return None if address.startswith("127.") else address


@pytest.mark.xdist_group("kernels")
def test_live_voila_is_not_reachable_on_other_interfaces(server: str) -> None:
    address = _public_address()
    if address is None:
        pytest.skip("this machine has no non-loopback IPv4 address")
    port = int(server.rsplit(":", 1)[1])
    with socket.socket() as sock:
        sock.settimeout(5)
        assert sock.connect_ex((address, port)) != 0, f"Voila answers on {address}:{port}"
