"""Layer-wise relevance propagation (Bach et al. 2015; Montavon et al. 2019) for sequential nets.

Quellec et al. 2017 compare their heatmaps with LRP (section 6, Table 3,
Fig. 4); this module provides that baseline for 2D and 3D networks.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from wslbench.attribution._utils import target_weights
from wslbench.attribution.base import Attribution, register_attribution
from wslbench.errors import ConfigError, InvalidInputError
from wslbench.nn.input_shift import InputShift
from wslbench.nn.maxout import Maxout
from wslbench.nn.rms_pool import RMSPool2d
from wslbench.nn.untied_conv import UntiedBiasConv2d

__all__ = ["LRP", "LRP_RULES"]

LRP_RULES: tuple[str, ...] = ("epsilon", "zplus", "alphabeta")

_CONV = {nn.Conv1d: F.conv1d, nn.Conv2d: F.conv2d, nn.Conv3d: F.conv3d}
_BATCHNORM = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)
_AVERAGE = (
    nn.AvgPool1d,
    nn.AvgPool2d,
    nn.AvgPool3d,
    nn.AdaptiveAvgPool1d,
    nn.AdaptiveAvgPool2d,
    nn.AdaptiveAvgPool3d,
)
_WINNER = (
    nn.MaxPool1d,
    nn.MaxPool2d,
    nn.MaxPool3d,
    nn.AdaptiveMaxPool1d,
    nn.AdaptiveMaxPool2d,
    nn.AdaptiveMaxPool3d,
    Maxout,
)
_PASS = (
    nn.ReLU,
    nn.LeakyReLU,
    nn.PReLU,
    nn.ELU,
    nn.SELU,
    nn.CELU,
    nn.GELU,
    nn.SiLU,
    nn.Softplus,
    nn.Tanh,
    nn.Sigmoid,
    nn.Identity,
    InputShift,
)
_DROPOUT = (nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.Dropout3d, nn.AlphaDropout)
_RESHAPE = (nn.Flatten, nn.Unflatten)
_SUPPORTED = (
    (nn.Linear, UntiedBiasConv2d, RMSPool2d)
    + tuple(_CONV)
    + _BATCHNORM
    + _AVERAGE
    + _WINNER
    + _PASS
    + _DROPOUT
    + _RESHAPE
)

Linear = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def _divide(relevance: torch.Tensor, z: torch.Tensor, eps: float) -> torch.Tensor:
    """``R / (z + eps·sign(z))`` with sign(0) = +1; 0 where the denominator is exactly 0."""
    den = z + eps * torch.where(z >= 0, 1.0, -1.0).to(z.dtype)
    nonzero = den != 0
    return torch.where(nonzero, relevance / torch.where(nonzero, den, torch.ones_like(den)), 0.0)


def _vjp_linear(
    fn: Callable[[torch.Tensor], torch.Tensor],
    like: torch.Tensor,
    grad_out: torch.Tensor,
    create_graph: bool,
) -> torch.Tensor:
    """``Jᵀ grad_out`` of a map linear in its input (the point does not matter)."""
    with torch.enable_grad():
        leaf = torch.zeros_like(like, requires_grad=True)
        (grad,) = torch.autograd.grad(fn(leaf), leaf, grad_out, create_graph=create_graph)
    return grad


def _vjp_at(
    fn: Callable[[torch.Tensor], torch.Tensor],
    a: torch.Tensor,
    grad_out: torch.Tensor,
    create_graph: bool,
) -> torch.Tensor:
    """``Jᵀ grad_out`` of ``fn`` at the point ``a`` (routing of max-type layers)."""
    with torch.enable_grad():
        leaf = a.detach().requires_grad_(True)
        (grad,) = torch.autograd.grad(fn(leaf), leaf, grad_out, create_graph=create_graph)
    return grad


@register_attribution("lrp")
class LRP(Attribution):
    """Relevance R_i of each input value, redistributed layer by layer from the score.

    The explained score ``f_c(x)`` is the output relevance; each layer passes
    its output relevance ``R_j`` to its inputs ``a_i`` in proportion to their
    contributions ``z_ij = a_i w_ij``. The map is Σ over channels of the input
    relevance (signed, raw). Rules for weighted layers (Conv1d/2d/3d,
    UntiedBiasConv2d, Linear):

    - ``"epsilon"``: R_i = Σ_j z_ij / (z_j + ε·sign(z_j)) R_j with
      z_j = Σ_i z_ij + b_j (bias included, so biases absorb relevance).
    - ``"zplus"``: R_i = Σ_j z_ij⁺ / Σ_i z_ij⁺ R_j (α = 1, β = 0; bias ignored).
      With non-negative inputs this is Montavon's z⁺ rule.
    - ``"alphabeta"``: R_i = Σ_j (α z_ij⁺/Σ_i z_ij⁺ − β z_ij⁻/Σ_i z_ij⁻) R_j,
      α − β = 1 (bias ignored, so relevance is conserved).

    Other layers, whatever the rule:

    - BatchNorm1d/2d/3d: an affine layer from its running statistics,
      ε-rule (its shift acts as a bias).
    - AvgPool / AdaptiveAvgPool (1d/2d/3d): a linear layer with positive
      weights, ε-rule (the z-rule; equal to z⁺ on non-negative inputs and
      conservative, where α-β would lose β·R on all-positive windows).
    - MaxPool / AdaptiveMaxPool (1d/2d/3d), Maxout: winner-take-all, all of
      ``R_j`` goes to the arg-max input.
    - RMSPool2d, y = sqrt(mean(x²) + eps): the square root is treated as a
      monotone activation and the mean of x² as an average of non-negative
      shares, R_i = x_i² / Σ_window x_k² · R_j (conservative).
    - ReLU, LeakyReLU and other element-wise activations, Identity, InputShift:
      relevance passes unchanged (after an InputShift the map is one of the shifted input). Dropout: identity (eval semantics). Flatten, Unflatten:
      relevance is reshaped back.

    The forward pass uses eval semantics (BatchNorm running statistics,
    dropout off) whatever the model's mode. With a bias-free network
    relevance is conserved: the map sums to the score (tested, 2D and 3D).
    Every rule is applied from the output to the input layer (no special
    first-layer rule such as z^B).

    Supported architectures: sequential ones, i.e. models whose forward is
    the composition of their leaf modules in registration order (any nesting
    of ``nn.Sequential``, or modules calling their children in order with no
    functional operations in between). A leaf of another type raises
    :class:`InvalidInputError` naming it; with ``check_sequential`` the
    layer-wise output is compared with ``model(x)`` (eval mode) and a
    mismatch (residual connections, functional ops) raises as well.

    Args:
        model: a sequential network ``(B, C, *spatial) -> (B,)`` or ``(B, K)``.
        rule: ``"epsilon"``, ``"zplus"`` or ``"alphabeta"``.
        epsilon: ε stabiliser of the ε-rule (also used by BatchNorm and pooling layers).
        alpha: α of the α-β rule (≥ 1).
        beta: β of the α-β rule (≥ 0, α − β = 1).
        check_sequential: verify the layer-wise forward reproduces ``model(x)``.

    Shapes:
        ``attribute``: ``(B, C, *spatial) -> (B, 1, *spatial)``.
    """

    def __init__(
        self,
        model: nn.Module,
        rule: str = "epsilon",
        epsilon: float = 1e-6,
        alpha: float = 2.0,
        beta: float = 1.0,
        check_sequential: bool = True,
    ) -> None:
        super().__init__(model)
        if rule not in LRP_RULES:
            raise ConfigError(f"unknown LRP rule {rule!r}; expected one of: {', '.join(LRP_RULES)}")
        if epsilon < 0:
            raise ConfigError(f"LRP epsilon must be >= 0, got {epsilon}")
        if rule == "alphabeta" and (alpha < 1 or beta < 0 or abs(alpha - beta - 1) > 1e-9):
            raise ConfigError(
                f"LRP alpha-beta rule needs alpha >= 1, beta >= 0 and alpha - beta = 1, "
                f"got alpha={alpha}, beta={beta}"
            )
        self.rule = rule
        self.epsilon = float(epsilon)
        self.alpha = float(alpha)
        self.beta = float(beta)
        self.check_sequential = bool(check_sequential)
        children = [m for m in model.modules() if next(m.children(), None) is None]
        self._layers = children
        for layer in children:
            if not isinstance(layer, _SUPPORTED):
                raise InvalidInputError(
                    f"LRP does not support layer type {type(layer).__name__}; it supports "
                    f"sequential networks of: {', '.join(sorted({t.__name__ for t in _SUPPORTED}))}"
                )
            if isinstance(layer, tuple(_CONV)) and layer.padding_mode != "zeros":
                raise InvalidInputError(
                    f"LRP supports zero-padded convolutions only, got padding_mode="
                    f"{layer.padding_mode!r} in {type(layer).__name__}"
                )

    # ----------------------------------------------------------------- forward
    def _forward_layer(self, layer: nn.Module, a: torch.Tensor) -> torch.Tensor:
        if isinstance(layer, _DROPOUT):
            return a
        if isinstance(layer, _BATCHNORM):
            scale, shift = self._batchnorm_affine(layer, a)
            return a * scale + shift
        return layer(a)

    @staticmethod
    def _batchnorm_affine(layer: nn.Module, a: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if layer.running_mean is None or layer.running_var is None:
            raise InvalidInputError(
                f"LRP treats {type(layer).__name__} as an affine layer and needs running "
                "statistics (track_running_stats=True)"
            )
        scale = torch.rsqrt(layer.running_var + layer.eps)
        shift = -layer.running_mean * scale
        if layer.weight is not None:
            scale = scale * layer.weight
            shift = shift * layer.weight + layer.bias
        shape = (1, -1, *([1] * (a.ndim - 2)))
        return scale.reshape(shape), shift.reshape(shape)

    def _check(self, x: torch.Tensor, out: torch.Tensor) -> None:
        self.model.eval()
        with torch.no_grad():
            reference = self.model(x.detach())
        tol = 1e-4 * (1.0 + float(reference.detach().abs().max()) if reference.numel() else 1.0)
        if reference.numel() == out.numel() and reference.shape[:1] == out.shape[:1]:
            reference = reference.reshape(out.shape)  # a final squeeze in forward is a reshape
        if reference.shape != out.shape or not torch.allclose(
            reference, out.detach(), rtol=1e-4, atol=tol
        ):
            raise InvalidInputError(
                "LRP supports sequential architectures only: applying the model's leaf modules "
                f"in order ({', '.join(type(m).__name__ for m in self._layers)}) does not "
                "reproduce model(x) (residual connections or functional operations in forward?)"
            )

    # ---------------------------------------------------------------- backward
    def _weighted(
        self, layer: nn.Module, create_graph: bool
    ) -> tuple[Linear, torch.Tensor, torch.Tensor | None]:
        """The bias-free linear map ``f(input, weight)``, the weight and the broadcastable bias."""

        def p(t: torch.Tensor | None) -> torch.Tensor | None:
            return None if t is None else (t if create_graph else t.detach())

        weight, bias = p(layer.weight), p(layer.bias)
        if isinstance(layer, nn.Linear):
            return F.linear, weight, bias
        if isinstance(layer, UntiedBiasConv2d):

            def untied(t: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
                return F.conv2d(t, w, None, layer.stride, layer.padding)

            return untied, weight, bias
        conv = (
            _CONV[type(layer)]
            if type(layer) in _CONV
            else next(f for t, f in _CONV.items() if isinstance(layer, t))
        )

        def convolve(t: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
            return conv(t, w, None, layer.stride, layer.padding, layer.dilation, layer.groups)

        if bias is not None:
            bias = bias.reshape(1, -1, *([1] * (weight.ndim - 2)))
        return convolve, weight, bias

    def _epsilon(
        self,
        fn: Linear,
        w: torch.Tensor,
        bias: torch.Tensor | None,
        a: torch.Tensor,
        relevance: torch.Tensor,
        eps: float,
        create_graph: bool,
    ) -> torch.Tensor:
        z = fn(a, w)
        if bias is not None:
            z = z + bias
        s = _divide(relevance, z, eps)
        return a * _vjp_linear(lambda t: fn(t, w), a, s, create_graph)

    def _alpha_beta(
        self,
        fn: Linear,
        w: torch.Tensor,
        a: torch.Tensor,
        relevance: torch.Tensor,
        alpha: float,
        beta: float,
        create_graph: bool,
    ) -> torch.Tensor:
        a_pos, a_neg = a.clamp(min=0), a.clamp(max=0)
        w_pos, w_neg = w.clamp(min=0), w.clamp(max=0)

        def share(w_for_pos: torch.Tensor, w_for_neg: torch.Tensor) -> torch.Tensor:
            # contributions of one sign: a⁺ w_for_pos + a⁻ w_for_neg (all of that sign)
            z = fn(a_pos, w_for_pos) + fn(a_neg, w_for_neg)
            s = _divide(relevance, z, 0.0)
            return a_pos * _vjp_linear(lambda t: fn(t, w_for_pos), a, s, create_graph) + a_neg * (
                _vjp_linear(lambda t: fn(t, w_for_neg), a, s, create_graph)
            )

        out = share(w_pos, w_neg)
        if alpha != 1.0:
            out = alpha * out
        if beta != 0.0:
            out = out - beta * share(w_neg, w_pos)
        return out

    def _relevance(
        self, layer: nn.Module, a: torch.Tensor, relevance: torch.Tensor, create_graph: bool
    ) -> torch.Tensor:
        if isinstance(layer, (nn.Linear, UntiedBiasConv2d, *_CONV)):
            fn, w, bias = self._weighted(layer, create_graph)
            if self.rule == "epsilon":
                return self._epsilon(fn, w, bias, a, relevance, self.epsilon, create_graph)
            alpha, beta = (1.0, 0.0) if self.rule == "zplus" else (self.alpha, self.beta)
            return self._alpha_beta(fn, w, a, relevance, alpha, beta, create_graph)
        if isinstance(layer, _BATCHNORM):
            scale, shift = self._batchnorm_affine(layer, a)
            if not create_graph:
                scale, shift = scale.detach(), shift.detach()
            return self._epsilon(
                lambda t, s: t * s, scale, shift, a, relevance, self.epsilon, create_graph
            )
        if isinstance(layer, _AVERAGE):
            return self._epsilon(
                lambda t, _w: layer(t), a, None, a, relevance, self.epsilon, create_graph
            )
        if isinstance(layer, RMSPool2d):
            squares = a * a

            def mean_sq(t: torch.Tensor) -> torch.Tensor:
                return F.avg_pool2d(t, layer.kernel_size, layer.stride, layer.padding)

            s = _divide(relevance, mean_sq(squares), 0.0)
            return squares * _vjp_linear(mean_sq, a, s, create_graph)
        if isinstance(layer, _WINNER):
            return _vjp_at(layer, a, relevance, create_graph)
        if isinstance(layer, _RESHAPE):
            return relevance.reshape(a.shape)
        return relevance  # element-wise activations, Identity, Dropout

    def _attribute(
        self, x: torch.Tensor, target: int | torch.Tensor | None, *, create_graph: bool
    ) -> torch.Tensor:
        data = x if create_graph else x.detach()
        activations = [data]
        with torch.set_grad_enabled(create_graph):
            try:
                for layer in self._layers:
                    activations.append(self._forward_layer(layer, activations[-1]))
            except (RuntimeError, InvalidInputError) as exc:
                raise InvalidInputError(
                    "LRP supports sequential architectures only: applying the leaf modules in "
                    f"order failed at {type(layer).__name__} ({exc})"
                ) from exc
            out = activations[-1]
            if self.check_sequential:
                self._check(x, out)
            relevance = out * target_weights(out, target)
            for layer, a in zip(reversed(self._layers), reversed(activations[:-1])):
                relevance = self._relevance(layer, a, relevance, create_graph)
        return relevance.sum(dim=1, keepdim=True)
