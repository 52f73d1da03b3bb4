"""Peak resident memory of reading an MRI cohort lazily (issue 24 item 4; Thibeau-Sutre 2020, 2.1).

Generates a synthetic cohort of ``--sessions`` GM maps on the paper grid (121×145×121 at
1.5 mm) session by session into a temporary CAPS-like folder
(:func:`wslbench.data.caps.write_synthetic_caps`), then reads it back through the lazy
:class:`~wslbench.data.volume_store.NiftiVolumeStore` the way the MRI experiment does: the
quality check of 2.3.1 (streamed maxima), the mean map of the AD sessions (figures, mask
report) and one pass over every session in batches (a training epoch's reads), twice (the
second round shows whether anything accumulates). Each phase
runs in a fresh process, so its peak RSS (``ru_maxrss``) is its own; a baseline process
that only imports torch and wslbench gives the fixed cost, and reading a quarter of the
cohort shows that the peak does not grow with the cohort. For comparison it prints what
the cohort takes as one in-memory float32 tensor (``N × 121 × 145 × 121 × 4`` bytes), the
layout the synthetic presets used before.

    PYTHONPATH=. OMP_NUM_THREADS=1 python benchmarks/mri_lazy_memory.py [--sessions 200] [--batch-size 8]
        [--folder DIR]   # keep the generated cohort there and reuse it
"""

from __future__ import annotations

import argparse
import json
import math
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

MIB = 1024 * 1024


def _peak_mib() -> float:
    """This process's peak resident set size in MiB (``ru_maxrss`` is in KiB on Linux)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _phase_baseline() -> dict:
    import torch  # noqa: F401

    import wslbench.data  # noqa: F401
    import wslbench.training  # noqa: F401

    return {"peak_mib": _peak_mib()}


def _phase_generate(folder: Path, sessions: int) -> dict:
    from wslbench.data import sample_synthetic_cohort, write_synthetic_caps
    from wslbench.experiments.mri import mri_config

    start = time.perf_counter()
    c = mri_config("paper")  # the paper preset's cohort, fewer subjects, 2 sessions each
    records = sample_synthetic_cohort(
        math.ceil(sessions / 2), 2, seed=0, ad_fraction=c.ad_fraction, atrophy=c.atrophy,
        n_qc_fail=2, region_dropout=c.region_dropout, weight_jitter=c.weight_jitter,
        location_mm=c.location_mm, asymmetry_sd=c.asymmetry_sd, cn_decoy=c.cn_decoy)[:sessions]
    write_synthetic_caps(records, folder, "paper", atrophy_maps=False)
    return {"peak_mib": _peak_mib(), "seconds": time.perf_counter() - start}


def _phase_read(folder: Path, batch_size: int, limit: int) -> dict:
    import numpy as np

    from wslbench.data import iter_volume_batches, mean_volume, quality_check, read_caps

    start = time.perf_counter()
    cohort = read_caps(folder)
    cohort = cohort.select(np.arange(min(limit, len(cohort))))
    store = cohort.volumes

    def one_round() -> tuple[int, float, float]:  # locals (the last batch) die with the call
        _, report = quality_check(store, keys=cohort.keys)
        mean = mean_volume(store, np.flatnonzero(cohort.labels.numpy() == 1), batch_size)
        total = 0.0
        for _, batch in iter_volume_batches(store, None, batch_size):
            total += float(batch.sum())
        return len(report.rejected), float(mean.max()), total

    peaks = []
    for _ in range(2):  # the second round shows that nothing accumulates
        rejected, mean_max, total = one_round()
        peaks.append(_peak_mib())
    return {"peak_mib": peaks[0], "peak_second_mib": peaks[1],
            "seconds": (time.perf_counter() - start) / 2, "sessions": len(store),
            "shape": list(store.shape), "qc_rejected": rejected,
            "mean_ad_max": mean_max, "checksum": total}


def _run_phase(*args: str) -> dict:
    out = subprocess.run([sys.executable, __file__, "--phase", *args], check=True,
                         capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=200)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--folder", help="keep the generated cohort here (reused when complete)")
    parser.add_argument("--phase", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.phase:
        name, *rest = args.phase
        result = {"baseline": lambda: _phase_baseline(),
                  "generate": lambda: _phase_generate(Path(rest[0]), int(rest[1])),
                  "read": lambda: _phase_read(Path(rest[0]), int(rest[1]), int(rest[2]))}[name]()
        print(json.dumps(result))
        return
    with tempfile.TemporaryDirectory(prefix="wslbench-mri-lazy-") as tmp:
        folder = Path(args.folder) if args.folder else Path(tmp) / "caps"
        base = _run_phase("baseline")
        gen = None
        if not (folder / "participants.tsv").is_file():
            gen = _run_phase("generate", str(folder), str(args.sessions))
        quarter = _run_phase("read", str(folder), str(args.batch_size), str(args.sessions // 4))
        read = _run_phase("read", str(folder), str(args.batch_size), str(args.sessions))
        disk = sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())
    n, shape = read["sessions"], read["shape"]
    tensor_mib = n * math.prod(shape[1:]) * 4 / MIB
    batch_mib = args.batch_size * math.prod(shape[1:]) * 4 / MIB
    print(f"cohort: {n} sessions of {'×'.join(map(str, shape[2:]))} (paper grid), "
          f"{disk / MIB:.0f} MiB on disk as .nii.gz; QC rejected {read['qc_rejected']}")
    if gen is not None:
        print(f"generation (session by session): {gen['seconds']:.0f} s, peak RSS "
              f"{gen['peak_mib']:.0f} MiB")
    print(f"baseline (import torch + wslbench): peak RSS {base['peak_mib']:.0f} MiB")
    for r in (quarter, read):
        print(f"lazy read of {r['sessions']} sessions (QC + AD mean + one pass, batches of "
              f"{args.batch_size}): {r['seconds']:.0f} s, peak RSS {r['peak_mib']:.0f} MiB "
              f"({r['peak_mib'] - base['peak_mib']:.0f} MiB over the baseline; one batch is "
              f"{batch_mib:.0f} MiB); after a second round {r['peak_second_mib']:.0f} MiB")
    print(f"in-memory float32 tensor of the same cohort: {tensor_mib:.0f} MiB "
          f"({tensor_mib * MIB / 1e9:.2f} GB)")


if __name__ == "__main__":
    main()
