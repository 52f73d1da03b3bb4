"""The ``wslbench`` command: run, grid, summary, demo, dashboards, reproduce, golden update.

Bad input (unknown notebook, malformed ``-p`` value, invalid grid file,
unknown preset or parameter) prints one line on stderr and exits with code 2,
writing nothing.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from pathlib import Path
from typing import Any

import yaml

from wslbench.errors import ConfigError, WslbenchError
from wslbench.presets import PRESET_NAMES

__all__ = ["main", "build_parser"]

GOLDEN_DIR = Path(__file__).resolve().parents[1] / "tests" / "golden"


def _parse_params(pairs: list[list[str]] | None) -> dict[str, Any]:
    params: dict[str, Any] = {}
    for name, raw in pairs or []:
        try:
            value = yaml.safe_load(raw)
        except yaml.YAMLError as exc:
            raise ConfigError(f"-p {name}: cannot parse value {raw!r}: {exc.problem}") from exc
        if not isinstance(value, (bool, int, float, str, list, type(None))):
            raise ConfigError(f"-p {name}: got {raw!r}; expected a number, string, bool or [list]")
        params[name] = value
    return params


def _checked_params(notebook: Path, params: dict[str, Any]) -> dict[str, Any]:
    from wslbench.runner.notebooks import check_parameters

    return check_parameters(notebook, params)


def _print_results(results: list[Any]) -> None:
    for r in results:
        print(f"{r.status:<10} {r.duration_s:7.1f}s  {r.folder}")


def _cmd_run(args: argparse.Namespace) -> int:
    from wslbench.runner.notebooks import resolve_notebook
    from wslbench.runner.run_folder import execute_run

    notebook = resolve_notebook(args.notebook)
    params = _parse_params(args.param)
    if args.preset:
        params["preset"] = args.preset
    params = _checked_params(notebook, params)
    result = execute_run(notebook, params, Path(args.out), timeout=args.timeout)
    _print_results([result])
    if result.status != "succeeded":
        print(f"wslbench: run failed; see {result.folder / 'log.txt'}", file=sys.stderr)
        return 1
    return 0


def _cmd_grid(args: argparse.Namespace) -> int:
    from wslbench.runner.grid import load_grid, run_grid
    from wslbench.runner.notebooks import notebook_parameters, resolve_notebook
    from wslbench.runner.summary import collect_runs, write_summary

    notebook = resolve_notebook(args.notebook)
    sets, timeout = load_grid(args.grid, allowed=set(notebook_parameters(notebook)))
    for params in sets:
        _checked_params(notebook, params)
    out = Path(args.out)
    print(f"wslbench: {len(sets)} runs of {notebook.stem} "
          f"({'dask ' + args.dask if args.dask else f'{args.workers} local worker(s)'})")
    results = run_grid(notebook, sets, out, workers=args.workers, dask_address=args.dask,
                       timeout=timeout, on_done=lambda r: _print_results([r]))
    runs = {str(r.folder) for r in results}
    table = collect_runs(out / notebook.stem)
    table = table[table["path"].isin(runs)]
    csv = write_summary(table, out / notebook.stem / "summary.csv")
    _show_table(table)
    print(f"summary: {csv}")
    return 0 if all(r.status == "succeeded" for r in results) else 1


def _show_table(table: Any) -> None:
    from wslbench.runner.summary import terminal_summary

    print(terminal_summary(table))


def _cmd_summary(args: argparse.Namespace) -> int:
    from wslbench.runner.summary import collect_runs, plot_summary, write_summary

    root = Path(args.runs_dir)
    table = collect_runs(root)
    if args.plot or args.by:
        if not (args.plot and args.by):
            raise ConfigError("--plot METRIC needs --by PARAM (and the other way round)")
        # metric and parameter names come from the user and the runs: never path parts
        name = re.sub(r"[^A-Za-z0-9_-]+", "_", f"summary_{args.plot}_by_{args.by}")
        fig = plot_summary(table, args.plot, args.by, root / f"{name}.png")
        print(f"figure: {fig}")
    _show_table(table)
    print(f"summary: {write_summary(table, root / 'summary.csv')}")
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    from wslbench.runner.notebooks import list_notebooks
    from wslbench.runner.run_folder import execute_run
    from wslbench.runner.summary import collect_runs, write_summary

    notebooks = list_notebooks()
    if not notebooks:
        raise ConfigError("no notebooks found in notebooks/; run from a wslbench checkout")
    out = Path(args.out)
    results = []
    for nb in notebooks:
        print(f"wslbench demo: running {nb.stem} ({args.preset} preset)...", flush=True)
        result = execute_run(nb, {"preset": args.preset}, out, timeout=args.timeout)
        _print_results([result])
        results.append(result)
    table = collect_runs(out)
    table = table[table["path"].isin({str(r.folder) for r in results})]
    _show_table(table)
    csv = write_summary(table, out / "summary.csv")
    print(f"\nsummary table: {csv}")
    for r in results:
        print(f"{r.folder.parent.name}: {r.folder / 'executed.html'} (figures in {r.folder / 'figures'})")
    return 0 if all(r.status == "succeeded" for r in results) else 1


def _cmd_dashboards(args: argparse.Namespace) -> int:
    from wslbench.runner.notebooks import notebooks_root
    from wslbench.runner.voila import serve

    # the kernels run in the dashboards folder: tell them where the run folders are
    os.environ.setdefault("WSLBENCH_RUNS_DIR", str(Path(args.runs).resolve()))
    return serve(notebooks_root() / "dashboards", host=args.host, port=args.port)


def _cmd_golden(args: argparse.Namespace) -> int:
    import json

    from wslbench.runner.golden import (
        diff_golden,
        golden_path,
        kernel_selections,
        make_golden,
        measure_metrics,
        native_capability,
        write_golden,
    )
    from wslbench.runner.notebooks import resolve_notebook

    if args.sanity and not args.reason:
        raise ConfigError("--sanity needs --reason TEXT (why the metric cannot be a golden yet)")
    notebook = resolve_notebook(args.notebook)
    path = golden_path(Path(args.golden_dir), notebook.stem)
    previous = json.loads(path.read_text()) if path.is_file() else None
    machine = native_capability()
    selections = kernel_selections(machine)
    print(f"wslbench golden: {notebook.stem} under {len(selections)} kernel selection(s) "
          f"of this {machine.upper()} machine: {'; '.join(s.name for s in selections)}", flush=True)

    def done(selection: Any, result: Any) -> None:
        print(f"  {result.status:<10} {result.duration_s:6.1f}s  {selection.name}", flush=True)

    runs = measure_metrics(notebook, selections, jobs=args.jobs, on_done=done)
    document = make_golden(notebook.stem, runs, previous, selections=selections,
                           sanity={p: args.reason for p in args.sanity or []},
                           promote=args.golden or [], machine=machine)
    print("\n".join(diff_golden(previous, document)))
    write_golden(path, document)
    print(f"golden file: {path}")
    return 0


def _cmd_reproduce(args: argparse.Namespace) -> int:
    from wslbench.runner.notebooks import resolve_notebook
    from wslbench.runner.reproduce import claim_line, notebook_claims, reproduce

    notebook = resolve_notebook(args.notebook)
    claims = notebook_claims(notebook)
    out = Path(args.out) if args.out else Path("runs") / "reproduce" / f"{notebook.stem}-{args.preset}"
    print(f"wslbench reproduce: {notebook.stem}, {len(claims.claims)} claim(s), {args.preset} preset, "
          f"seeds 0-{args.seeds - 1}", flush=True)
    document = reproduce(notebook.stem, claims, preset=args.preset, seeds=args.seeds, out=out,
                         record=args.record,
                         on_seed=lambda s, sec: print(f"  seed {s} measured in {sec:.1f} s", flush=True))
    for entry in document["claims"]:
        print(claim_line(entry))
    print(f"reproduce.json: {out / 'reproduce.json'}")
    return 0


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors (exit code 2)."""

    def error(self, message: str) -> None:  # type: ignore[override]
        print(f"wslbench: error: {self.prog}: {message}", file=sys.stderr)
        raise SystemExit(2)


def build_parser() -> argparse.ArgumentParser:
    from wslbench import __version__

    parser = _Parser(prog="wslbench", description=__doc__.split("\n")[0])
    parser.add_argument("--version", action="version", version=f"wslbench {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="execute a notebook into a run folder")
    run.add_argument("notebook", help="path, stem (01_dr_heatmaps) or prefix (01)")
    run.add_argument("-p", "--param", nargs=2, action="append", metavar=("NAME", "VALUE"))
    run.add_argument("--preset", choices=PRESET_NAMES)
    run.add_argument("--out", default="runs")
    run.add_argument("--timeout", type=float, default=None, help="per-cell timeout (s)")
    run.set_defaults(func=_cmd_run)

    grid = sub.add_parser("grid", help="run a parameter grid (local processes or Dask)")
    grid.add_argument("notebook")
    grid.add_argument("grid", help="grid YAML file")
    grid.add_argument("--workers", type=int, default=1)
    grid.add_argument("--dask", metavar="ADDRESS", help="existing dask.distributed scheduler")
    grid.add_argument("--out", default="runs")
    grid.set_defaults(func=_cmd_grid)

    summary = sub.add_parser("summary", help="table (and CSV) of the runs in a folder")
    summary.add_argument("runs_dir")
    summary.add_argument("--plot", metavar="METRIC")
    summary.add_argument("--by", metavar="PARAM")
    summary.set_defaults(func=_cmd_summary)

    demo = sub.add_parser("demo", help="run every notebook's demo preset and summarise")
    demo.add_argument("--preset", choices=PRESET_NAMES, default="demo")
    demo.add_argument("--out", default="runs")
    demo.add_argument("--timeout", type=float, default=None)
    demo.set_defaults(func=_cmd_demo)

    dash = sub.add_parser("dashboards", help="serve the Voila dashboards (localhost only)")
    dash.add_argument("--host", default="127.0.0.1")
    dash.add_argument("--port", type=int, default=8866)
    dash.add_argument("--runs", default="runs", help="runs folder the dashboards load models from")
    dash.set_defaults(func=_cmd_dashboards)

    rep = sub.add_parser("reproduce", help="check a paper's headline claims over paired seeds")
    rep.add_argument("notebook")
    rep.add_argument("--preset", choices=PRESET_NAMES, default="demo")
    rep.add_argument("--seeds", type=int, default=3, help="seeds 0..N-1 (at least 2)")
    rep.add_argument("--out", help="folder of reproduce.json (default runs/reproduce/NB-PRESET)")
    rep.add_argument("--record", action="store_true",
                     help="also write benchmarks/reproduce/NB.json in the checkout")
    rep.set_defaults(func=_cmd_reproduce)

    golden = sub.add_parser("golden", help="regression golden files")
    gsub = golden.add_subparsers(dest="golden_command", required=True)
    update = gsub.add_parser("update", help="re-run NOTEBOOK (smoke, seed 0) under several kernel "
                             "selections and rewrite its golden file with measured tolerances")
    update.add_argument("notebook")
    update.add_argument("--golden-dir", default=str(GOLDEN_DIR))
    update.add_argument("--sanity", action="append", metavar="PATTERN",
                        help="record metrics matching this fnmatch pattern as sanity ranges only")
    update.add_argument("--reason", help="why the --sanity metrics cannot be goldens (kept in the file)")
    update.add_argument("--golden", action="append", metavar="PATTERN",
                        help="measure again metrics this pattern matches that were sanity ranges")
    update.add_argument("--jobs", type=int, default=2, help="one-thread runs at a time (default 2)")
    update.set_defaults(func=_cmd_golden)
    return parser


def main(argv: list[str] | None = None) -> int:
    import logging

    if not logging.getLogger("wslbench").handlers:  # fallbacks and skipped inputs, on stderr
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("wslbench: %(levelname)s: %(message)s"))
        logging.getLogger("wslbench").addHandler(handler)
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse already printed one usage line
        return int(exc.code or 0) if exc.code not in (None, 0) else 0
    try:
        return args.func(args)
    except WslbenchError as exc:
        print(f"wslbench: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("wslbench: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
