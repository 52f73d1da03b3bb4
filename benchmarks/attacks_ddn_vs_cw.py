"""DDN vs C&W L2 on one model and one batch (Rony 2020, Appendix V, Table A V-1).

Prints success rate, mean L2 (successful attacks), median L2 (failures as
worst case), gradient count and run time for DDN 100/300/1000, C&W 4×25 / 1×100
with the learning rate and first constant grid-searched on a held-out batch as
the thesis did (Table A V-9), and C&W with Carlini & Wagner's own settings
(9 search steps × ``--reference-steps``, early abort) on the first
``--n-reference`` images, plus ratios against DDN-100 measured in the same
process. If foolbox is installed (benchmark environment only, never a wslbench
dependency), its DDN and C&W run on the same model and inputs too.

    PYTHONPATH=. python benchmarks/attacks_ddn_vs_cw.py [--n 64] [--size 32] [--threads 2]
        [--n-reference 8] [--reference-steps 10000]
"""

from __future__ import annotations

import argparse
import time

import torch
import torch.nn.functional as F
from torch import nn

from wslbench.attacks import DDN, CarliniWagnerL2, attack_report, tune_carlini_wagner
from wslbench.attacks.base import AttackResult


def make_task(n: int, size: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Images in [0, 1]: class 1 has a faint bright blob at a random place, class 0 has none."""
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, 2, (n,), generator=g)
    yy, xx = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
    centres = torch.randint(size // 4, 3 * size // 4, (n, 2), generator=g)
    d2 = (yy - centres[:, :1, None]) ** 2 + (xx - centres[:, 1:, None]) ** 2
    blob = torch.exp(-d2 / (2 * (size / 10) ** 2))
    noise = 0.1 * torch.rand(n, 3, size, size, generator=g)
    x = 0.4 + noise + 0.25 * y[:, None, None, None] * blob[:, None]
    return x.clamp(0, 1), y


def small_cnn() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(3, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(32, 32, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
        nn.Linear(32, 2),
    )


def train(model: nn.Module, x: torch.Tensor, y: torch.Tensor, epochs: int = 15) -> float:
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    for _ in range(epochs):
        for i in range(0, len(x), 64):
            opt.zero_grad()
            F.cross_entropy(model(x[i:i + 64]), y[i:i + 64]).backward()
            opt.step()
    model.eval()
    with torch.no_grad():
        return (model(x).argmax(1) == y).float().mean().item()


def foolbox_result(model: nn.Module, x: torch.Tensor, y: torch.Tensor, attack, grads: int) -> AttackResult:
    import foolbox as fb

    fmodel = fb.PyTorchModel(model, bounds=(0, 1))
    start = time.perf_counter()
    _, adv, _ = attack(fmodel, x, y, epsilons=None)
    runtime = time.perf_counter() - start
    with torch.no_grad():
        ok = model(adv).argmax(1) != y
    norms = (adv - x).flatten(1).norm(dim=1)
    return AttackResult(adv, ok, torch.where(ok, norms, torch.full_like(norms, float("inf"))), grads, runtime)


def main() -> None:
    parser = argparse.ArgumentParser(description="DDN vs C&W L2 (Table A V-1)")
    parser.add_argument("--n", type=int, default=64, help="attacked images")
    parser.add_argument("--size", type=int, default=32)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--n-reference", type=int, default=8, help="images of the 9-search-step C&W run")
    parser.add_argument("--reference-steps", type=int, default=10_000)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    xtr, ytr = make_task(1024, args.size, seed=0)
    model = small_cnn()
    acc = train(model, xtr, ytr)
    x, y = make_task(4 * args.n + 64, args.size, seed=1)
    x = torch.round(x * 255) / 255
    with torch.no_grad():
        keep = model(x).argmax(1) == y
    x, y = x[keep], y[keep]
    (tx, ty), (x, y) = (x[:16], y[:16]), (x[16:16 + args.n], y[16:16 + args.n])
    print(f"model: small CNN, train accuracy {acc:.3f}; attacking {len(x)} correctly classified "
          f"{args.size}x{args.size} RGB images in one batch, {args.threads} threads")

    runs: dict[str, AttackResult] = {}
    for steps in (100, 300, 1000):
        runs[f"DDN {steps}"] = DDN(model, steps=steps).run(x, y)
    tunings = {f"C&W {s}x{k}": tune_carlini_wagner(model, tx, ty, search_steps=s, steps=k)
               for s, k in ((4, 25), (1, 100))}
    for name, tuning in tunings.items():
        print(f"{name}: grid-searched on 16 held-out images: lr {tuning.learning_rate:g}, "
              f"first C {tuning.initial_const:g}")
        runs[name] = tuning.attack(model).run(x, y)
    n_ref = min(args.n_reference, len(x))
    reference = CarliniWagnerL2(model, steps=args.reference_steps, search_steps=9).run(x[:n_ref], y[:n_ref])
    try:
        import foolbox as fb
    except ImportError:
        print("(foolbox not installed: skipping the reference-library comparison)")
    else:
        runs["foolbox DDN 100"] = foolbox_result(model, x, y, fb.attacks.DDNAttack(steps=100), 100)
        tuned = tunings["C&W 4x25"]
        cw = fb.attacks.L2CarliniWagnerAttack(binary_search_steps=4, steps=25, stepsize=tuned.learning_rate,
                                              initial_const=tuned.initial_const)
        runs["foolbox C&W 4x25"] = foolbox_result(model, x, y, cw, 100)

    ref = attack_report(runs["DDN 100"], x)
    print(f"\n{'attack':<18}{'success %':>10}{'mean L2':>10}{'median L2':>11}{'#grads':>8}"
          f"{'time s':>9}{'meanL2/DDN100':>15}{'time/DDN100':>13}")
    for name, res in runs.items():
        r = attack_report(res, x)
        print(f"{name:<18}{r['success_rate']:>10.1f}{r['mean_l2']:>10.4f}{r['median_l2']:>11.4f}"
              f"{r['n_grads']:>8.0f}{r['runtime_s']:>9.2f}{r['mean_l2'] / ref['mean_l2']:>15.3f}"
              f"{r['runtime_s'] / ref['runtime_s']:>13.2f}")
    head = AttackResult(runs["DDN 100"].adversarial[:n_ref], runs["DDN 100"].success[:n_ref],
                        runs["DDN 100"].norms[:n_ref], 100, runs["DDN 100"].runtime_s)
    d, c = attack_report(head, x[:n_ref]), attack_report(reference, x[:n_ref])
    print(f"\non the first {n_ref} images: C&W 9x{args.reference_steps} (authors' settings, early abort) "
          f"success {c['success_rate']:.1f} %, mean L2 {c['mean_l2']:.4f}, {c['n_grads']:.0f} gradients; "
          f"DDN 100 mean L2 {d['mean_l2']:.4f} = {d['mean_l2'] / c['mean_l2']:.3f}x with "
          f"{c['n_grads'] / 100:.0f}x fewer gradients")


if __name__ == "__main__":
    main()
