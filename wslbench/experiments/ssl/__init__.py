"""Semi-supervised DR screening with an autoencoder + classifier (Arora, Gaudio, Satpathy).

What notebook ``03_ssl_dr`` calls. The encoder E is shared by a decoder D
(reconstruction, L_ae = MSE, eq. 1) and a small classifier C (α-weighted BCE,
eq. 2). Three regimes (4.3):

- ``"cl"``: the baseline, E + C trained on the labelled pool only (CL1 / Res18);
- ``"ae_then_cl"``: E + D pre-trained on the unlabelled pool, then E + C on the
  labelled pool ("AE then CL");
- ``"combined"``: whole labelled or whole unlabelled minibatches drawn at random in
  proportion to the two pools, without replacement within an epoch; labelled
  minibatches minimise L_ae + λ·L_cl (eq. 3, λ fixed or adaptive by eq. 4),
  unlabelled ones L_ae ("AE-CL combined"). The kind of every step is logged (Fig. 3).

Data (4.6): synthetic fundus cases with grades 0–3 (healthy = grade 0) from three
"hospitals" (acquisition styles), a 60/20/20 split stratified across hospitals with
a fixed test set, a labelled pool of ``label_fraction`` of the training part (the rest
joins the unlabelled pool) plus ``n_unlabelled`` extra unlabelled cases (the
Messidor-Extension stand-in); the 4.5 augmentation. Accuracy is measured on the test
set after every epoch and the maximum is reported, as in Table 2."""

from __future__ import annotations

from wslbench.experiments.ssl.claims import CLAIMS, recorded_claims
from wslbench.experiments.ssl.config import (
    ARCHITECTURE_SETTINGS,
    REGIMES,
    SSL_PRESETS,
    SSLConfig,
    ssl_config,
)
from wslbench.experiments.ssl.data import (
    SSLData,
    make_ssl_data,
)
from wslbench.experiments.ssl.evaluate import (
    evaluate_ssl,
    reconstructions,
)
from wslbench.experiments.ssl.train import (
    SSLTraining,
    build_ssl_model,
    compare_regimes,
    label_fraction_sweep,
    train_ssl,
    train_ssl_cached,
)

__all__ = ["CLAIMS", "recorded_claims", "ARCHITECTURE_SETTINGS", "SSLConfig", "SSL_PRESETS", "REGIMES", "SSLData", "SSLTraining", "ssl_config", "make_ssl_data", "build_ssl_model", "train_ssl", "train_ssl_cached", "evaluate_ssl", "compare_regimes", "label_fraction_sweep", "reconstructions"]
