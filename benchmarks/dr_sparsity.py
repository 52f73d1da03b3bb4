"""Quellec 2017: cost of the sparsity-enhanced step and the ν trend of Table 2.

1. Cost: median time of one sparsity-enhanced training step (eq. 6, double
   backpropagation) over one plain MSE step, same net, batch and size, and the
   π-heatmap throughput, measured in the same process; printed as ratios.
2. Trend (Table 2): trains the ``demo`` preset (synthetic fundus data with vessel
   and dust/specular/drusen confounders next to lesions) for each ν and prints the
   test image AUC (referable DR) and the mean lesion-level FROC area Ā_z
   (0 ≤ FP/image ≤ 10), plus the mean L1 norm of the π maps.

    PYTHONPATH=. python benchmarks/dr_sparsity.py [--skip-trend] [--threads 2] [--nus 0 1e-4 1e-3 1e-2]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from wslbench.experiments import dr
from wslbench.losses import sparsity_enhanced_loss
from wslbench.models.dr import build_dr_net, dr_weight_decay_params


def _median_step_seconds(net: str, size: int, width: float, batch: int, nu: float, reps: int) -> float:
    torch.manual_seed(0)
    model = build_dr_net(net, input_size=size, width=width)
    opt = torch.optim.Adam(dr_weight_decay_params(model), lr=1e-4)
    x, y = torch.rand(batch, 3, size, size), torch.rand(batch) * 4
    times = []
    for i in range(reps + 2):
        start = time.perf_counter()
        total, _ = sparsity_enhanced_loss(model, x, y, nu)
        opt.zero_grad()
        total.backward()
        opt.step()
        if i >= 2:  # two warm-up steps
            times.append(time.perf_counter() - start)
    return statistics.median(times)


def _heatmaps_per_second(net: str, size: int, width: float, batch: int, reps: int) -> float:
    model = build_dr_net(net, input_size=size, width=width).eval()
    x = torch.rand(batch, 3, size, size)
    dr.dr_heatmaps(model, x, "pi")
    start = time.perf_counter()
    for _ in range(reps):
        dr.dr_heatmaps(model, x, "pi", batch_size=batch)
    return reps * batch / (time.perf_counter() - start)


def cost(reps: int) -> None:
    print("== cost of the sparsity-enhanced step (eq. 6) vs a plain step ==")
    print(f"{'net':<7}{'size':>5}{'width':>7}{'batch':>6}{'plain ms':>10}{'sparse ms':>11}"
          f"{'ratio':>7}{'pi maps/s':>11}{'pi batch / plain step':>22}")
    for net, size, width, batch in (("net_b", 128, 0.25, 16), ("net_b", 256, 0.25, 8),
                                    ("net_a", 128, 0.25, 16), ("net_b", 448, 0.25, 2)):
        plain = _median_step_seconds(net, size, width, batch, 0.0, reps)
        sparse = _median_step_seconds(net, size, width, batch, 1e-3, reps)
        rate = _heatmaps_per_second(net, size, width, batch, max(2, reps // 2))
        per_map_vs_step = (batch / rate) / plain
        print(f"{net:<7}{size:>5}{width:>7}{batch:>6}{plain * 1e3:>10.1f}{sparse * 1e3:>11.1f}"
              f"{sparse / plain:>7.2f}{rate:>11.1f}{per_map_vs_step:>22.2f}")


def trend(nus: list[float]) -> None:
    config = dr.dr_config("demo")
    print(f"\n== Table 2 trend, demo preset ({config.net}, {config.input_size} px, width "
          f"{config.width}, {config.iterations} iterations, {config.n_train} training cases) ==")
    data = dr.make_dr_data(config)
    rows = dr.nu_table(config, data, nus)
    print(f"{'nu':>8}{'image AUC':>11}{'mean FROC area':>16}{'pi L1':>9}")
    for r in rows:
        print(f"{r['nu']:>8g}{r['image_auc']:>11.3f}{r['froc_mean']:>16.3f}{r['pi_l1']:>9.2f}")
    base = rows[0]
    for r in rows[1:]:
        print(f"nu={r['nu']:g} vs nu=0: AUC x{r['image_auc'] / base['image_auc']:.3f}, "
              f"FROC area x{r['froc_mean'] / max(base['froc_mean'], 1e-9):.2f}, "
              f"pi L1 x{r['pi_l1'] / base['pi_l1']:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--reps", type=int, default=10)
    parser.add_argument("--skip-trend", action="store_true")
    parser.add_argument("--nus", type=float, nargs="+", default=[0.0, 1e-4, 1e-3, 1e-2])
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    cost(args.reps)
    if not args.skip_trend:
        trend(args.nus)


if __name__ == "__main__":
    main()
