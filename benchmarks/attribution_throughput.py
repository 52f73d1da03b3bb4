"""Attribution throughput and peak memory (issue 12): ω, π, LRP, Grad-CAM in 2D and 3D, and the
time of one 3D session-level meaningful-perturbation mask.

- 2D: Quellec 2017 net B at 256 px, width 0.25 (``build_dr_net("net_b", input_size=256,
  width=0.25)``), a batch of 8 RGB images.
- 3D: the smoke configuration of the Thibeau-Sutre 2020 CNN on the full 121×145×121 grid
  (``build_mri_cnn("smoke")``), a batch of 2 volumes.
- Mask: one session-level mask (λ's × 100) of one 121×145×121 volume on the same 3D CNN,
  50 iterations (early stopping disabled by a patience above the iteration count).

Each measurement runs in a fresh Python subprocess (so one method's allocations do not
hide another's). Throughput is maps per second over the timed calls, after one warm-up
call. Peak memory is the increase of the process's resident-set high-water mark
(``resource.getrusage(RUSAGE_SELF).ru_maxrss``, KiB on Linux) from just after the model
and the input are built to the end of the run: the extra RAM the method needed at its
peak, torch tensors included (tracemalloc does not see torch's allocations and torch has
no public CPU allocator statistics). Freed memory kept by the allocator between calls is
part of the high-water mark, so the figure is an upper bound of one call's working set.

    PYTHONPATH=. python benchmarks/attribution_throughput.py [--reps 2] [--threads N]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time

import torch

METHODS = ("sensitivity", "hue-constrained", "lrp", "grad-cam")
SETTINGS = ("2d", "3d")


def _rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _setup(setting: str) -> tuple[torch.nn.Module, torch.Tensor, str]:
    """Model (eval), input batch and Grad-CAM layer name of a setting."""
    torch.manual_seed(0)
    if setting == "2d":
        from wslbench.models.dr import build_dr_net

        model = build_dr_net("net_b", input_size=256, width=0.25).eval()
        return model, torch.rand(8, 3, 256, 256), f"layers.{model.feature_index - 1}"
    from wslbench.models.mri import MRI_GRID, build_mri_cnn

    model = build_mri_cnn("smoke").eval()
    return model, torch.rand(2, 1, *MRI_GRID), f"features.{len(model.features) - 1}.2"


def _measure_method(method: str, setting: str, reps: int) -> dict[str, float]:
    from wslbench.attribution import create_attribution

    model, x, layer = _setup(setting)
    kwargs = {"layer": layer} if method == "grad-cam" else {}
    explainer = create_attribution(method, model, **kwargs)
    start_rss = _rss_mib()
    explainer.attribute(x)  # warm-up
    start = time.perf_counter()
    for _ in range(reps):
        explainer.attribute(x)
    seconds = time.perf_counter() - start
    return {
        "maps_per_s": reps * x.shape[0] / seconds,
        "s_per_batch": seconds / reps,
        "peak_mib": _rss_mib() - start_rss,
    }


def _measure_mask(iterations: int) -> dict[str, float]:
    from wslbench.attribution import MeaningfulPerturbation

    model, x, _ = _setup("3d")
    explainer = MeaningfulPerturbation(
        model, session_max_iter=iterations, session_patience=iterations + 1
    )
    start_rss = _rss_mib()
    start = time.perf_counter()
    result = explainer.optimise_session(x[:1], target=1)
    seconds = time.perf_counter() - start
    return {
        "iterations": float(result.epochs[0]),
        "s_per_mask": seconds,
        "s_per_iteration": seconds / float(result.epochs[0]),
        "peak_mib": _rss_mib() - start_rss,
    }


def _child(args: list[str]) -> dict[str, float]:
    output = subprocess.run(
        [sys.executable, __file__, *args], check=True, capture_output=True, text=True
    ).stdout
    return json.loads(output.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--reps", type=int, default=2, help="timed calls per method (after a warm-up)"
    )
    parser.add_argument("--iterations", type=int, default=50, help="mask optimisation iterations")
    parser.add_argument(
        "--threads", type=int, default=None, help="torch threads (default: torch's)"
    )
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.child:  # one measurement in this fresh process, printed as JSON
        kind, *rest = args.child
        figures = (
            _measure_mask(args.iterations)
            if kind == "mask"
            else _measure_method(kind, rest[0], args.reps)
        )
        print(json.dumps(figures))
        return

    common = ["--reps", str(args.reps), "--iterations", str(args.iterations)]
    if args.threads:
        common += ["--threads", str(args.threads)]
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    print("2d: net_b 256 px width 0.25, batch 8 | 3d: smoke MRI CNN 121x145x121, batch 2")
    print(f"{'method':<17}{'setting':>8}{'maps/s':>10}{'s/batch':>10}{'peak MiB':>10}")
    for setting in SETTINGS:
        for method in METHODS:
            figures = _child(["--child", method, setting, *common])
            print(
                f"{method:<17}{setting:>8}{figures['maps_per_s']:>10.2f}"
                f"{figures['s_per_batch']:>10.2f}{figures['peak_mib']:>10.0f}"
            )
    figures = _child(["--child", "mask", *common])
    print(
        f"meaningful-perturbation, 3d session-level mask (1 volume): "
        f"{figures['iterations']:.0f} iterations in {figures['s_per_mask']:.1f} s "
        f"({figures['s_per_iteration']:.2f} s/iteration), peak +{figures['peak_mib']:.0f} MiB"
    )


if __name__ == "__main__":
    main()
