"""CNN + compressed sensing cell detector: CNNCS, ECNNCS-1, ECNNCS-2 (Xue et al., 3.2, 4.1).

The *observation layers* are a ResNet regressing the label ``{x, β·c}`` of a
patch: the L dense codes ``x_l = D a_l`` of the centroid positions on the L
observation lines (3.1, :class:`~wslbench.cs.codec.ProjectionCodec`) and the
count (4.1). The *reconstruction layer* recovers the sparse codes â from the
predicted dense codes, line by line (a batch of ``B·L`` problems, eq. 4).
The three variants of 4.1:

- ``"cnncs"``: fixed Gaussian D, trained with the L2 term of eq. 3 only; at
  inference â comes from any solver (``solver``, FISTA by default).
- ``"ecnncs1"``: end to end through a LISTA of ``lista_iterations`` unrolled
  steps (learnable W and S as in Fig. 5; the threshold stays λ/L: learnt
  thresholds grow until every code is zero, the cheapest way to remove false
  positives from the L1 term), backpropagated by autograd; full eq. 3.
- ``"ecnncs2"``: end to end through any solver with the paper's
  backpropagation rule (:func:`~wslbench.cs.recovery.sparse_recovery`; the
  batch approximation eq. 8–9 by default, ``rule="exact"`` for eq. 5–7) and a
  learnable D; full eq. 3. The L2 targets are encoded with the current D held
  constant (``x = D.detach() a``): D moves only through the L1 term, as the
  paper's δD is "the partial derivative of the L1 norm term".

Choices where the paper is silent or our scale differs:

- The paper fine-tunes the FC layer of an ImageNet ResNet-152; no weights may be
  downloaded here, so every layer is trained from scratch (``depth`` and
  ``base_width`` choose the ResNet; ``paper`` presets use 152/64).
- The regressor's output is multiplied by ``code_scale``, a constant buffer that
  training sets once, before the first step, to the RMS of the training labels
  (:meth:`CNNCS.set_code_scale`), so that a randomly initialised FC layer starts
  on the scale of signed-distance labels (tens of pixels). The constant is a
  reparametrisation of the last layer (same functions, same eq. 3 loss on the
  unscaled label); the paper's fine-tuned, pretrained FC has no such start.
  Measured once (demo preset, seed 0, CNNCS, patch F1 at the preset's decoding):
  0.593 with it, 0.497 without (although the L2 loss of the last epoch was lower
  without it: 4,094 vs 5,188) — a weak, single-seed reason.
- ``head_grid = 1`` is the ResNet's own global average pooling before the FC
  layer. ``head_grid = g > 1`` average-pools the last feature map to g×g and
  flattens it, keeping the coarse layout the code has to encode; it learns
  positions much faster from scratch and is what the small presets use.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from wslbench.cs.codec import ProjectionCodec
from wslbench.cs.decode import Decoded, decode
from wslbench.cs.recovery import sparse_recovery
from wslbench.cs.solvers import LISTA, create_solver
from wslbench.errors import ConfigError, InvalidInputError
from wslbench.nn.resnet import resnet

__all__ = ["CNNCS_VARIANTS", "CodeRegressor", "CNNCS", "CNNCSOutput"]

CNNCS_VARIANTS = ("cnncs", "ecnncs1", "ecnncs2")
Variant = Literal["cnncs", "ecnncs1", "ecnncs2"]


class CodeRegressor(nn.Module):
    """ResNet → pooling to ``head_grid``² cells → FC to ``code_dim`` (4.1 "observation layers").

    Shapes: ``(B, in_channels, H, W) -> (B, code_dim)``.
    """

    def __init__(
        self,
        code_dim: int,
        *,
        depth: int = 18,
        base_width: int = 64,
        output_stride: int = 32,
        head_grid: int = 1,
        in_channels: int = 3,
    ) -> None:
        super().__init__()
        if code_dim < 1 or head_grid < 1:
            raise ConfigError(f"code_dim and head_grid must be >= 1, got {code_dim}, {head_grid}")
        self.backbone = resnet(depth, in_channels=in_channels, output_stride=output_stride,
                               base_width=base_width)
        self.head_grid = head_grid
        self.fc = nn.Linear(self.backbone.num_features * head_grid**2, code_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = self.backbone.forward_features(x)
        pooled = F.adaptive_avg_pool2d(features, self.head_grid).flatten(1)
        return self.fc(pooled)


@dataclass
class CNNCSOutput:
    """One forward pass: the label x̂ ``(B, L·m + 1)``, its dense codes ``(B, L, m)``, the
    predicted count ``(B,)`` and, when recovered, the sparse codes â ``(B, L, n)``."""

    code: torch.Tensor
    dense: torch.Tensor
    count: torch.Tensor
    sparse: torch.Tensor | None


class CNNCS(nn.Module):
    """The CNNCS detector of one patch size (Xue et al., Fig. 4–5, 4.1).

    Args:
        codec: the random-projection codec (patch size, L, m, β, seed of D).
        variant: ``"cnncs"``, ``"ecnncs1"`` or ``"ecnncs2"`` (module docstring).
        lam: λ of the recovery problem eq. 4 (0.39 in 4.3).
        solver: registered solver name for ``cnncs`` / ``ecnncs2`` recovery.
        solver_iterations: maximum iterations of that solver.
        lista_iterations: T of the ECNNCS-1 LISTA.
        rule: ``"approx"`` (eq. 8–9) or ``"exact"`` (eq. 5–7) backward of ECNNCS-2.
        depth, base_width, output_stride, head_grid: the ResNet regressor.
    """

    def __init__(
        self,
        codec: ProjectionCodec,
        *,
        variant: Variant = "cnncs",
        lam: float = 0.39,
        solver: str = "fista",
        solver_iterations: int = 200,
        lista_iterations: int = 10,
        rule: Literal["approx", "exact"] = "approx",
        depth: int = 18,
        base_width: int = 64,
        output_stride: int = 32,
        head_grid: int = 1,
    ) -> None:
        super().__init__()
        if variant not in CNNCS_VARIANTS:
            raise ConfigError(f"unknown CNNCS variant {variant!r}; expected one of: {', '.join(CNNCS_VARIANTS)}")
        if lam < 0:
            raise ConfigError(f"lam must be >= 0, got {lam}")
        if rule not in ("approx", "exact"):
            raise ConfigError(f"rule must be 'approx' or 'exact', got {rule!r}")
        self.codec = codec
        self.variant = variant
        self.lam = float(lam)
        self.solver = solver
        self.solver_iterations = solver_iterations
        self.rule = rule
        self.regressor = CodeRegressor(codec.n_lines * codec.code_length + 1, depth=depth,
                                       base_width=base_width, output_stride=output_stride,
                                       head_grid=head_grid)
        self.register_buffer("code_scale", torch.tensor(1.0))
        dictionary = codec.dictionary.clone()
        if variant == "ecnncs2":
            self.dictionary = nn.Parameter(dictionary)
        else:
            self.register_buffer("dictionary", dictionary)
        self.lista_iterations = lista_iterations
        self.lista = (LISTA.from_dictionary(dictionary, lam, lista_iterations)
                      if variant == "ecnncs1" else None)
        if self.lista is not None:  # Fig. 5 trains W and S; the threshold λ/L stays fixed
            self.lista.theta.requires_grad_(False)

    @property
    def end_to_end(self) -> bool:
        """Whether training recovers â and uses the L1 term of eq. 3."""
        return self.variant != "cnncs"

    def forward(self, images: torch.Tensor, *, recover: bool | None = None) -> CNNCSOutput:
        """Regress the label of ``images`` ``(B, 3, h, w)``; recover â when ``recover`` (default:
        in training for the end-to-end variants, always in eval mode)."""
        h, w = self.codec.height, self.codec.width
        if images.ndim != 4 or tuple(images.shape[2:]) != (h, w):
            raise InvalidInputError(
                f"CNNCS expects patches (B, 3, {h}, {w}) (the codec's size), got {tuple(images.shape)}"
            )
        code = self.regressor(images) * self.code_scale
        dense, count = self.codec.split(code)
        if recover is None:
            recover = self.end_to_end or not self.training
        sparse = self.recover(dense) if recover else None
        return CNNCSOutput(code, dense, count, sparse)

    def recover(
        self, dense: torch.Tensor, *, lam: float | None = None, solver: str | None = None
    ) -> torch.Tensor:
        """Sparse codes ``(B, L, n)`` from dense codes ``(B, L, m)``, all lines as one batch.

        ``lam`` / ``solver`` override the model's (the notebook's λ slider re-solves
        without retraining); ECNNCS-1 uses its trained LISTA unless ``solver`` is given.
        """
        b, lines, m = dense.shape
        flat = dense.reshape(b * lines, m)
        lam = self.lam if lam is None else float(lam)
        if self.lista is not None and solver is None:
            sparse = self.lista(flat)
        elif self.variant == "ecnncs2" and solver is None:
            sparse = sparse_recovery(flat, self.dictionary, lam, solver=self.solver, rule=self.rule,
                                     max_iter=self.solver_iterations)
        else:
            dictionary = self.dictionary.detach()
            with torch.no_grad():
                sparse = self._solver(solver or self.solver, dictionary, lam).solve(flat, dictionary, lam)
        return sparse.reshape(b, lines, -1)

    def _solver(self, name: str, dictionary: torch.Tensor, lam: float) -> object:
        """A solver instance: ISTA/FISTA capped at ``solver_iterations``, OMP stopping by the
        lasso optimality rule at ``lam``, LISTA untrained (= T ISTA steps) with T = the
        ECNNCS-1 depth."""
        if name in ("ista", "fista"):
            return create_solver(name, max_iter=self.solver_iterations)
        if name == "lista":
            return LISTA.from_dictionary(dictionary, lam, self.lista_iterations).to(dictionary.device)
        return create_solver(name)

    @torch.no_grad()
    def set_code_scale(self, centroids: list[np.ndarray]) -> float:
        """Set :attr:`code_scale` to the RMS of the labels of ``centroids`` (per-patch lists,
        e.g. the training set) and return it (1 when they are all zero)."""
        code, _ = self.targets(centroids)
        rms = float(code.pow(2).mean().sqrt())
        self.code_scale.fill_(rms if rms > 0 else 1.0)
        return float(self.code_scale)

    def targets(self, centroids: list[np.ndarray]) -> tuple[torch.Tensor, torch.Tensor]:
        """The training label ``{x, β·c}`` ``(B, L·m + 1)`` and sparse codes ``(B, L, n)`` of
        per-patch centroid lists, encoded with the current D held constant."""
        device = self.dictionary.device
        sparse = self.codec.sparse(centroids).to(device)
        dense = self.codec.compress(sparse, self.dictionary.detach())
        counts = torch.tensor([len(c) for c in centroids], dtype=dense.dtype, device=device)
        code = torch.cat([dense.flatten(1), self.codec.count_weight * counts[:, None]], 1)
        return code, sparse

    @torch.no_grad()
    def detect(
        self,
        images: torch.Tensor,
        *,
        threshold: float = 4.0,
        bandwidth: float = 10.0,
        lam: float | None = None,
        solver: str | None = None,
        peak_radius: int = 2,
    ) -> Decoded:
        """Cell centres of each patch: regress, recover, decode by back-projection and
        mean-shift (3.1, 4.3)."""
        was_training = self.training
        self.eval()
        try:
            out = self.forward(images, recover=False)
            sparse = self.recover(out.dense, lam=lam, solver=solver)
        finally:
            self.train(was_training)
        return decode(self.codec, sparse.cpu(), threshold=threshold, bandwidth=bandwidth,
                      count=out.count.cpu(), peak_radius=peak_radius)
