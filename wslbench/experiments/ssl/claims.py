"""The headline claims of Arora et al. checked by ``wslbench reproduce 03_ssl_dr`` (issue 22).

One seed draws one train/validation split, one labelled pool per label fraction and one
initialisation; every regime and architecture of that seed shares them (paired). Each arm
is trained on train + validation (4.6) and scored by the balanced accuracy of the test set
after its last epoch: no epoch is picked on the test set (Table 2 reports the maximum over
epochs, a selection on test that the claims avoid).

Measurements, per architecture ``a`` (``aecl1``, ``aeres18``), regime ``r`` and label
fraction ``p`` (10 and 25 %): ``{a}_{r}_{p}``, their means over the two fractions
``{a}_{r}``, the AE-then-CL gains ``{a}_ae_gain_{p}``, the worst CL arm ``cl_worst`` and
``chance`` (0.5).
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

from wslbench.claims import Claim, ClaimSet
from wslbench.experiments.ssl.config import REGIMES, ssl_config
from wslbench.experiments.ssl.data import make_ssl_data
from wslbench.experiments.ssl.train import train_ssl_cached

__all__ = ["CLAIMS", "FRACTIONS", "ARCHITECTURES", "LEARNT", "measure", "recorded_claims"]

#: Label fractions of the claims (issue 22 item 7).
FRACTIONS: tuple[float, ...] = (0.1, 0.25)
ARCHITECTURES: tuple[str, ...] = ("aecl1", "aeres18")
#: A CL baseline below this test balanced accuracy voids every comparison with it.
LEARNT = 0.6


def _pct(fraction: float) -> str:
    return f"{round(100 * fraction)}"


def measure(preset: str, seed: int) -> dict[str, float]:
    """Final test balanced accuracy of every arm of one seed (module docstring)."""
    out: dict[str, float] = {"chance": 0.5}
    for fraction in FRACTIONS:
        data = None
        for arch in ARCHITECTURES:
            config = ssl_config(preset, architecture=arch, label_fraction=fraction, seed=seed,
                                retrain=True)
            config = replace(config, eval_every=config.epochs)  # only the last epoch counts
            data = make_ssl_data(config) if data is None else data  # the pools ignore the model
            for regime in REGIMES:
                run = train_ssl_cached(replace(config, regime=regime), data)
                out[f"{arch}_{regime}_{_pct(fraction)}"] = run.final_test_balanced_accuracy
    for arch in ARCHITECTURES:
        for regime in REGIMES:
            values = [out[f"{arch}_{regime}_{_pct(f)}"] for f in FRACTIONS]
            out[f"{arch}_{regime}"] = sum(values) / len(values)
        for f in FRACTIONS:
            out[f"{arch}_ae_gain_{_pct(f)}"] = (out[f"{arch}_ae_then_cl_{_pct(f)}"]
                                               - out[f"{arch}_cl_{_pct(f)}"])
    out["cl_worst"] = min(out[f"{a}_cl_{_pct(f)}"] for a in ARCHITECTURES for f in FRACTIONS)
    return out


_CL_FLOORS = {f"{a}_cl_{_pct(f)}": LEARNT for a in ARCHITECTURES for f in FRACTIONS}
_FEW, _MORE = _pct(min(FRACTIONS)), _pct(max(FRACTIONS))

CLAIMS = ClaimSet(
    measure=measure,
    claims=(
        Claim("baseline_learns", "The CL baselines learn: test balanced accuracy above "
              f"{LEARNT} for both architectures at {_FEW} and {_MORE} % labels (issue 22; "
              "DESIGN §9: an arm at chance voids the comparison)", "test balanced accuracy",
              "cl_worst", "chance", threshold=LEARNT - 0.5),
        Claim("ae_then_cl_helps", "AE then CL beats the CL baseline (AERes18: 89.08 vs 86.97, "
              f"Table 2); mean over {_FEW} and {_MORE} % labels", "test balanced accuracy",
              "aeres18_ae_then_cl", "aeres18_cl", floors=_CL_FLOORS),
        Claim("ae_then_cl_helps_aecl1", "AE then CL1 beats CL1 by 1.68 points (5.3, Table 2: "
              f"76.47 vs 74.79); mean over {_FEW} and {_MORE} % labels", "test balanced accuracy",
              "aecl1_ae_then_cl", "aecl1_cl", floors=_CL_FLOORS),
        Claim("combined_helps_res18", "AE-CL combined beats Res18 by 2.1 points (5.3, Table 2: "
              f"89.08 vs 86.97); mean over {_FEW} and {_MORE} % labels", "test balanced accuracy",
              "aeres18_combined", "aeres18_cl", floors=_CL_FLOORS),
        Claim("combined_below_cl_aecl1", "AECL1 combined (λ = 400) is not above CL1 (5.3, Table "
              f"2: 73.53 vs 74.79); mean over {_FEW} and {_MORE} % labels",
              "test balanced accuracy", "aecl1_combined", "aecl1_cl", direction="less",
              floors=_CL_FLOORS),
        Claim("gain_grows_with_fewer_labels", f"The AE-then-CL gain of AERes18 is larger at "
              f"{_FEW} % labels than at {_MORE} % (the question of semi-supervised learning, "
              "issue 22)", "gain in test balanced accuracy", f"aeres18_ae_gain_{_FEW}",
              f"aeres18_ae_gain_{_MORE}", floors=_CL_FLOORS),
    ),
)


def recorded_claims(path: Path | None = None) -> list[dict[str, object]]:
    """The claims recorded by ``wslbench reproduce 03_ssl_dr --record`` as table rows
    (:func:`wslbench.runner.reproduce.claims_table`); ``[]`` when nothing is recorded yet.

    Args:
        path: a ``reproduce.json``; default the recorded one of the checkout.
    """
    from wslbench.runner.reproduce import RECORD_DIR, claims_table

    path = RECORD_DIR / "03_ssl_dr.json" if path is None else Path(path)
    if not path.exists():
        return []
    document = json.loads(path.read_text())
    return [{**row, "seeds": len(document["seeds"]), "preset": document["preset"]}
            for row in claims_table(document)]
