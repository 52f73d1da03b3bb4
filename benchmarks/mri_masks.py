"""Thibeau-Sutre et al. 2020: session-mask cost at the paper grid, and the paper's trends.

1. Cost: wall time and peak RSS increase of one session-level mask (λ × 100,
   ``--iterations`` steps) on a 121×145×121 gray-matter map with the smoke 3D CNN
   (the paper's goal: under 60 s on 2 cores).
2. Trends on the ``demo`` preset (synthetic cohort at 3 mm from the real GM
   template): ROI cosine similarity of group masks across neighbouring β₁ / β₂
   (Table 2: > 0.9 for neighbours), intra- vs inter-subject similarity of session
   masks (0.94 vs 0.80), and the overlap of the group mask with the true atrophy.

    PYTHONPATH=. python benchmarks/mri_masks.py [--iterations 50] [--threads 2] [--skip-trends]
"""

from __future__ import annotations

import argparse
import resource
import time

import numpy as np
import torch

from wslbench.attribution.meaningful_perturbation import MeaningfulPerturbation
from wslbench.data.synthetic_mri import make_synthetic_cohort
from wslbench.experiments import mri
from wslbench.models.mri import build_mri_cnn


def _rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def cost(iterations: int) -> None:
    cohort = make_synthetic_cohort(1, 1, grid="paper", seed=0, ad_fraction=1.0)
    model = build_mri_cnn("smoke", input_shape=tuple(cohort.volumes.shape[2:])).eval()
    explainer = MeaningfulPerturbation(model, session_max_iter=iterations, session_patience=10**6)
    before = _rss_mib()
    start = time.perf_counter()
    result = explainer.optimise_session(cohort.volumes, 1)
    seconds = time.perf_counter() - start
    print(f"== session-level mask, 121x145x121, smoke CNN, {iterations} iterations ==")
    print(f"{seconds:.1f} s ({seconds / iterations:.2f} s/iteration), peak RSS +{_rss_mib() - before:.0f} MiB, "
          f"min mask {float(result.mask.min()):.3f}; goal < 60 s: {'met' if seconds < 60 else 'not met'}")


def trends() -> None:
    config = mri.mri_config("demo")
    data = mri.make_mri_data(config)
    run = mri.train_fold_cached(config, data)
    print(f"\n== demo preset: {len(data.cohort.labels)} sessions at 3 mm, test balanced accuracy "
          f"{run.test_balanced_accuracy:.3f} ==")
    for name, values in (("beta1", config.beta1_values), ("beta2", config.beta2_values)):
        table = mri.hyperparameter_similarity(config, data, name, values)
        neighbours = [table.iloc[i, i + 1] for i in range(len(values) - 1)]
        print(f"\n{name} similarity (paper: > 0.9 between neighbours except beta1 = 2)")
        print(table.round(3).to_string())
        print("neighbours: " + ", ".join(f"{v:.3f}" for v in neighbours))
    sessions = mri.session_masks(config, data)
    intra, inter = mri.intra_inter(sessions.masks, sessions.subjects, data.atlas)
    if intra is None:
        print(f"\nsession masks ({config.session_iterations} iterations) perturb no ROI: "
              "no intra/inter-subject similarity")
    else:
        print(f"\nintra-subject {intra:.3f} vs inter-subject {inter:.3f} (paper 0.94 vs 0.80)")
    report = mri.mask_report(config, data, mri.group_mask_cached(config, data).mask)
    print("group mask: " + ", ".join(f"{k} {v:.3f}" for k, v in report.items()))
    print(f"share of voxels masked (m < 0.95): "
          f"{float(np.mean(mri.group_mask_cached(config, data).mask.numpy() < 0.95)):.4f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--iterations", type=int, default=50)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--skip-trends", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    cost(args.iterations)
    if not args.skip_trends:
        trends()


if __name__ == "__main__":
    main()
