"""Quellec 2017 embedded data: can global image statistics tell referable DR? (DESIGN §9)

Fits a standardised logistic regression for referable DR (grade ≥ 2) on the per-channel
field-of-view means, and on the means plus standard deviations, of the Graham-preprocessed
synthetic fundus images (:func:`wslbench.experiments.dr.shortcut_probe`) and prints its test
ROC area, on the demo preset's own split (train 320 → test 96) and on a larger one
(``--n`` cases each for train and test, for a tighter estimate). Values near 0.5 mean the
label is carried by the lesions, not by colour or brightness statistics of the whole field.

    PYTHONPATH=. python benchmarks/dr_shortcut_probe.py [--preset demo] [--seeds 0 1] [--n 800]
"""

from __future__ import annotations

import argparse
import time

import torch

from wslbench.experiments import dr


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="demo")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--n", type=int, default=800, help="train and test cases of the large split")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    base = dr.dr_config(args.preset)
    for seed in args.seeds:
        start = time.perf_counter()
        n = max(args.n, base.n_train, base.n_test)
        data = dr.make_dr_data(dr.dr_config(args.preset, seed=seed, n_train=n, n_val=4, n_test=n))
        own = dr.shortcut_probe(data.train.subset(range(base.n_train)),
                                data.test.subset(range(base.n_test)))
        large = dr.shortcut_probe(data.train, data.test)
        print(f"{args.preset} seed {seed}: own split ({base.n_train}->{base.n_test}) "
              f"AUC means {own['mean']:.3f}, means+std {own['mean_std']:.3f} | "
              f"{n}->{n}: means {large['mean']:.3f}, means+std {large['mean_std']:.3f} "
              f"({time.perf_counter() - start:.0f} s)", flush=True)


if __name__ == "__main__":
    main()
