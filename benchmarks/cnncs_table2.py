"""Xue et al., Table 2 trend: CNNCS vs ECNNCS-1 vs ECNNCS-2 vs the density-map baseline.

Trains the three variants of the ``demo`` preset (the same synthetic patches, the
same D) for each seed, plus the FCRN-style density-map network and the
local-maximum floor, and prints precision, recall and F1 at distance ρ pooled
over the whole test images (4.2), mean ± std over seeds, next to the paper's ICPR
2012 figures (F1: CNNCS 0.821, ECNNCS-1 0.851, ECNNCS-2 0.862). The paired claims
with intervals are ``wslbench reproduce 04_cnncs_cells``.

    PYTHONPATH=. python benchmarks/cnncs_table2.py [--preset demo] [--seeds 0 1] [--threads 2]
"""

from __future__ import annotations

import argparse
import time

import torch

from wslbench.data.splits import format_mean_std
from wslbench.experiments import cnncs

PAPER_F1 = {"CNNCS": 0.821, "ECNNCS-1": 0.851, "ECNNCS-2": 0.862}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--preset", default="demo")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--epochs", type=int, default=None)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    scores: dict[str, dict[str, list[float]]] = {}
    seconds: dict[str, list[float]] = {}
    start = time.perf_counter()
    for seed in args.seeds:
        config = cnncs.cnncs_config(args.preset, seed=seed, epochs=args.epochs)
        data = cnncs.make_cell_data(config)
        if seed == args.seeds[0]:
            print(f"{args.preset} preset: {len(data.train_patches)} training patches "
                  f"({config.patch_size} px, rotations {config.rotations}), {len(data.test_patches)} "
                  f"test patches, m = {config.m}, L = {config.n_lines}, λ = {config.lam}, "
                  f"α = {config.alpha}, ρ = {data.rho:.1f} px, ResNet-{config.depth} width "
                  f"{config.base_width}, {config.epochs} epochs, seeds {args.seeds}")
        for row in cnncs.compare_variants(config, data):
            method = str(row["method"])
            print(f"  seed {seed} {method:<14} P {row['precision']:.3f} R {row['recall']:.3f} "
                  f"F1 {row['f1']:.3f} ({row['train_s']:.0f} s)", flush=True)
            entry = scores.setdefault(method, {"precision": [], "recall": [], "f1": []})
            for key in entry:
                entry[key].append(float(row[key]))  # type: ignore[arg-type]
            seconds.setdefault(method, []).append(float(row["train_s"]))  # type: ignore[arg-type]
    print(f"{'method':<14}{'precision':>16}{'recall':>16}{'F1':>16}{'paper F1':>10}{'train s':>9}")
    for method, entry in scores.items():
        paper = f"{PAPER_F1[method]:.3f}" if method in PAPER_F1 else "—"
        print(f"{method:<14}" + "".join(f"{format_mean_std(entry[k], digits=3):>16}" for k in entry)
              + f"{paper:>10}{sum(seconds[method]) / len(seconds[method]):>9.0f}")
    print(f"total {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
