"""CNNCS models and loss (Xue et al., 3.2, 4.1, eq. 3)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from wslbench.cs.codec import ProjectionCodec
from wslbench.errors import ConfigError, InvalidInputError
from wslbench.losses.cs import cnncs_loss
from wslbench.models.cnncs import CNNCS, CodeRegressor

CODEC = ProjectionCodec(height=32, width=32, n_lines=4, code_length=20, count_weight=0.5, seed=3)
CENTROIDS = [np.array([[5.0, 7.0], [20.0, 25.0]]), np.zeros((0, 2)), np.array([[31.7, 0.2]])]


def _model(variant: str, **kwargs: object) -> CNNCS:
    torch.manual_seed(0)
    return CNNCS(CODEC, variant=variant, base_width=4, output_stride=16, head_grid=2, lam=0.05,
                 solver_iterations=100, lista_iterations=4, **kwargs)  # type: ignore[arg-type]


def test_code_regressor_shape_and_head_grid() -> None:
    reg = CodeRegressor(17, depth=18, base_width=4, output_stride=16, head_grid=3)
    assert reg(torch.rand(2, 3, 64, 64)).shape == (2, 17)
    assert reg.fc.in_features == reg.backbone.num_features * 9
    with pytest.raises(ConfigError):
        CodeRegressor(0)


def test_targets_match_codec_encoding() -> None:
    model = _model("cnncs")
    code, sparse = model.targets(CENTROIDS)
    assert torch.allclose(code, CODEC.encode(CENTROIDS), atol=1e-6)
    assert torch.equal(sparse, CODEC.sparse(CENTROIDS))
    assert code[:, -1].tolist() == pytest.approx([1.0, 0.0, 0.5])  # β·count, β = 0.5


def test_targets_refuse_centroids_outside_the_patch() -> None:
    with pytest.raises(InvalidInputError, match="outside"):
        _model("cnncs").targets([np.array([[-3.0, 10.0]])])


@pytest.mark.parametrize("variant", ["cnncs", "ecnncs1", "ecnncs2"])
def test_forward_shapes_and_recovery(variant: str) -> None:
    model = _model(variant).train()
    out = model(torch.rand(3, 3, 32, 32))
    assert out.code.shape == (3, 4 * 20 + 1)
    assert out.dense.shape == (3, 4, 20) and out.count.shape == (3,)
    assert (out.sparse is None) == (variant == "cnncs")  # CNNCS trains on the L2 term only
    model.eval()
    assert model(torch.rand(2, 3, 32, 32)).sparse.shape == (2, 4, CODEC.n)


def test_wrong_patch_size_is_refused() -> None:
    with pytest.raises(InvalidInputError, match="32, 32"):
        _model("cnncs")(torch.rand(1, 3, 48, 48))


def test_unknown_variant_and_rule() -> None:
    with pytest.raises(ConfigError, match="ecnncs1"):
        CNNCS(CODEC, variant="ecnncs3")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="approx"):
        CNNCS(CODEC, rule="other")  # type: ignore[arg-type]


def test_ecnncs1_trains_lista_and_keeps_d_fixed() -> None:
    model = _model("ecnncs1").train()
    code, sparse = model.targets(CENTROIDS)
    out = model(torch.rand(3, 3, 32, 32))
    cnncs_loss(out.code, code, out.sparse, sparse, alpha=1.0).backward()
    assert model.lista.W.grad.abs().sum() > 0 and model.lista.S.grad.abs().sum() > 0
    assert model.lista.theta.grad is None  # Fig. 5: W and S are trained, the threshold is not
    assert not model.dictionary.requires_grad


def test_ecnncs2_moves_d_through_the_l1_term_only() -> None:
    model = _model("ecnncs2").train()
    code, sparse = model.targets(CENTROIDS)
    out = model(torch.rand(3, 3, 32, 32))
    cnncs_loss(out.code, code).backward()  # L2 only: targets use D.detach()
    assert model.dictionary.grad is None or model.dictionary.grad.abs().sum() == 0
    model.zero_grad()
    out = model(torch.rand(3, 3, 32, 32))
    cnncs_loss(out.code, code, out.sparse, sparse, alpha=1.0).backward()
    assert model.dictionary.grad is not None and model.dictionary.grad.abs().sum() > 0
    assert model.regressor.fc.weight.grad.abs().sum() > 0


def test_recover_with_another_solver_and_lambda() -> None:
    model = _model("ecnncs1").eval()
    dense = CODEC.compress(CODEC.sparse(CENTROIDS))
    for solver in ("ista", "fista", "omp", "lista"):
        a = model.recover(dense, lam=0.01, solver=solver)
        assert a.shape == (3, 4, CODEC.n) and torch.isfinite(a).all()
    sparse_small = model.recover(dense, lam=0.01, solver="fista")
    sparse_large = model.recover(dense, lam=0.5, solver="fista")
    assert sparse_large.abs().sum() < sparse_small.abs().sum()  # λ shrinks the ℓ1 norm


def test_detect_on_oracle_codes_finds_the_cells() -> None:
    """The decoding path of :meth:`CNNCS.detect` on exact codes: regressor replaced by the truth."""
    model = _model("cnncs").eval()
    model.solver_iterations = 1000  # signed distances of ~30 px with λ = 0.01: slow to converge
    dense = CODEC.compress(CODEC.sparse(CENTROIDS))
    sparse = model.recover(dense, lam=0.01, solver="fista")
    from wslbench.cs.decode import decode

    decoded = decode(CODEC, sparse, threshold=0.5, bandwidth=3.0)
    for found, truth in zip(decoded.centres, CENTROIDS):
        assert len(found) == len(truth)
        if len(truth):
            d = np.linalg.norm(found[:, None] - truth[None], axis=-1).min(1)
            assert d.max() < 1.0
    out = model.detect(torch.rand(3, 3, 32, 32), threshold=0.5, bandwidth=3.0)
    assert len(out.centres) == 3


def test_cnncs_loss_by_hand() -> None:
    xp, xt = torch.tensor([[1.0, 2.0, 0.0]]), torch.tensor([[0.0, 0.0, 1.0]])
    ap, at = torch.tensor([[[0.5, 0.0]]]), torch.tensor([[[1.0, 1.0]]])
    assert float(cnncs_loss(xp, xt)) == pytest.approx(0.5 * (1 + 4 + 1))
    assert float(cnncs_loss(xp, xt, ap, at, alpha=2.0)) == pytest.approx(3.0 + 2.0 * 1.5)
    with pytest.raises(InvalidInputError):
        cnncs_loss(xp, xt, alpha=1.0)
    with pytest.raises(InvalidInputError):
        cnncs_loss(xp, xt[:, :2])
    with pytest.raises(InvalidInputError):
        cnncs_loss(xp, xt, alpha=-1.0)
