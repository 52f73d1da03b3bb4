"""Quellec 2017, 5.1.1 augmentation of one training batch: one ``grid_sample`` over the batch
(:func:`wslbench.data.fundus_preprocess.augment_batch`, what ``train_dr`` uses) against the
per-image, per-channel spline warp (:func:`augment_image`), in the same process.

Prints the time of each per batch, their ratio, and the largest difference of the outputs.

    PYTHONPATH=. python benchmarks/dr_augmentation.py [--batch 16] [--size 128] [--repeats 30]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from wslbench.data.fundus_preprocess import augment_batch, augment_image, sample_augmentation


def _timed(fn, repeats: int) -> float:
    fn()  # warm-up
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    return (time.perf_counter() - start) / repeats


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    rng = np.random.default_rng(0)
    images = torch.rand(args.batch, 3, args.size, args.size)
    params = [sample_augmentation(rng) for _ in range(args.batch)]
    batched = augment_batch(images, params, output_size=args.size)
    looped = torch.stack([augment_image(x, p, output_size=args.size) for x, p in zip(images, params)])
    t_batch = _timed(lambda: augment_batch(images, params, output_size=args.size), args.repeats)
    t_loop = _timed(lambda: [augment_image(x, p, output_size=args.size) for x, p in zip(images, params)],
                    args.repeats)
    print(f"batch {args.batch} x 3 x {args.size}^2, {args.threads} thread(s)")
    print(f"  per-image spline warp (augment_image): {1000 * t_loop:8.2f} ms per batch")
    print(f"  one grid_sample (augment_batch):       {1000 * t_batch:8.2f} ms per batch")
    print(f"  ratio (spline / grid_sample):          {t_loop / t_batch:8.2f}x")
    print(f"  largest output difference:             {float((batched - looped).abs().max()):.2e}")


if __name__ == "__main__":
    main()
