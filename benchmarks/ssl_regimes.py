"""Arora et al., Table 2 trend: CL baseline vs "AE then CL" vs "AE-CL combined".

For each architecture (AECL1, AERes18) and label fraction, trains the three regimes of
the ``demo`` preset over several seeds (a new train/val split and initialisation per
seed, the same test set) and prints the maximum test accuracy, mean ± std over
seeds, and the gain of each SSL regime over the baseline; then the final-epoch test
balanced accuracy (the claims' measure, ``wslbench reproduce 03_ssl_dr``). The paper's trend: with
unlabelled data, AE then CL gains +1.7 points for AECL1 and AE-CL combined +2.1 for
AERes18 (Table 2, Messidor).

    PYTHONPATH=. python benchmarks/ssl_regimes.py [--seeds 0 1] [--fractions 0.1 0.25] [--threads 2]
"""

from __future__ import annotations

import argparse
import time

import torch

from wslbench.data.splits import format_mean_std, mean_std
from wslbench.experiments import ssl


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--fractions", type=float, nargs="+", default=[0.1, 0.25])
    parser.add_argument("--architectures", nargs="+", default=["aecl1", "aeres18"])
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    base = ssl.ssl_config("demo")
    print(f"demo preset: {base.n_images} labelled-set cases + {base.n_unlabelled} extra unlabelled, "
          f"{base.image_size} px, width {base.base_width}, {base.epochs} epochs "
          f"({base.ae_epochs} AE pre-training), seeds {args.seeds}")
    start = time.perf_counter()
    print(f"{'model':<9}{'labels':>7} {'measure':<10}{'CL':>16}{'AE then CL':>16}{'AE-CL combined':>16}"
          f"{'gain AE>CL':>12}{'gain comb.':>12}")
    for arch in args.architectures:
        for fraction in args.fractions:
            acc: dict[str, list[float]] = {r: [] for r in ssl.REGIMES}
            bal: dict[str, list[float]] = {r: [] for r in ssl.REGIMES}
            for seed in args.seeds:  # the per-architecture demo settings (λ = 400 with Adam for AECL1)
                config = ssl.ssl_config("demo", architecture=arch, label_fraction=fraction, seed=seed)
                data = ssl.make_ssl_data(config)
                for row in ssl.compare_regimes(config, data):
                    acc[row["regime"]].append(100.0 * row["max_test_accuracy"])
                    bal[row["regime"]].append(100.0 * row["final_test_balanced_accuracy"])
            for name, values in (("max acc", acc), ("final bal", bal)):
                cl = mean_std(values["cl"])[0]
                print(f"{arch:<9}{fraction:>7g} {name:<10}"
                      + "".join(f"{format_mean_std(values[r]):>16}" for r in ssl.REGIMES)
                      + f"{mean_std(values['ae_then_cl'])[0] - cl:>+12.2f}"
                      + f"{mean_std(values['combined'])[0] - cl:>+12.2f}")
    print(f"total {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
