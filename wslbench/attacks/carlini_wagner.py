"""Carlini & Wagner L2 attack, the reference of Rony 2020, Appendix V (eq. A V-5).

Minimises ``‖x̃ − x‖² + C·f(x̃)`` over ``w`` with ``x̃ = low + (high − low)·(tanh(w) + 1)/2``
using Adam, where ``f`` is the logit margin (untargeted:
``max(Z_y − max_{i≠y} Z_i, −κ)``; targeted: ``max(max_{i≠t} Z_i − Z_t, −κ)``).
``C`` is found by a binary search over ``search_steps`` (×10 while no success
has been found, as in the original). Budgets "4×25", "1×100" and "9×10 000" of
Table A V-1 are ``search_steps × steps``. With ``abort_early`` (the thesis's "with
early stopping", A V-5) a search step stops when its loss, checked every tenth of
its iterations, has not fallen by 0.01 % since the last check; ``n_grads`` counts
the gradients actually computed, as the #Grads column does. The thesis tunes the
learning rate and the first C per setting (Table A V-9):
:func:`~wslbench.attacks.tune_carlini_wagner`.
"""

from __future__ import annotations

import math
import time

import torch
from torch import nn

from wslbench.attacks.base import ATTACKS, AttackResult, check_attack_input, is_adversarial
from wslbench.errors import ConfigError
from wslbench.model_state import preserved_model_state

__all__ = ["CarliniWagnerL2"]


@ATTACKS.register("carlini_wagner_l2")
class CarliniWagnerL2:
    """C&W L2 attack.

    Args:
        model: maps inputs in ``[low, high]`` to logits ``(B, K)``.
        steps: Adam iterations per search step.
        search_steps: binary-search steps on the constant C.
        initial_const: first C (0.01 in Carlini & Wagner 2017).
        learning_rate: Adam learning rate (the thesis grid-searches 0.01…1).
        confidence: κ.
        abort_early: stop a search step whose loss has stalled (see module doc).
        low: lower bound of the input box.
        high: upper bound of the input box.
    """

    def __init__(
        self,
        model: nn.Module,
        steps: int = 25,
        search_steps: int = 4,
        initial_const: float = 0.01,
        learning_rate: float = 0.01,
        confidence: float = 0.0,
        abort_early: bool = True,
        low: float = 0.0,
        high: float = 1.0,
    ) -> None:
        if steps < 1 or search_steps < 1:
            raise ConfigError("C&W needs steps ≥ 1 and search_steps ≥ 1")
        if initial_const <= 0 or learning_rate <= 0:
            raise ConfigError("C&W initial_const and learning_rate must be positive")
        self.model = model
        self.steps = steps
        self.search_steps = search_steps
        self.initial_const = initial_const
        self.learning_rate = learning_rate
        self.confidence = confidence
        self.abort_early = abort_early
        self.low = low
        self.high = high

    def _to_box(self, w: torch.Tensor) -> torch.Tensor:
        return self.low + (self.high - self.low) * (torch.tanh(w) + 1) / 2

    def _margin(self, logits: torch.Tensor, y: torch.Tensor, targeted: bool) -> torch.Tensor:
        onehot = torch.nn.functional.one_hot(y, logits.shape[1]).bool()
        own = logits[onehot]
        other = logits.masked_fill(onehot, -math.inf).amax(dim=1)
        margin = other - own if targeted else own - other
        return margin.clamp_min(-self.confidence)

    def run(self, x: torch.Tensor, y: torch.Tensor, targeted: bool = False) -> AttackResult:
        """Attack ``x`` with true labels ``y`` (or target labels when ``targeted``)."""
        y = check_attack_input(x, y, self.low, self.high)
        start = time.perf_counter()
        b = x.shape[0]
        full = torch.full((b,), 1.0, device=x.device, dtype=x.dtype)
        norms, adv, n_grads = self.run_groups(x, y, self.learning_rate * full, self.initial_const * full,
                                              torch.zeros(b, dtype=torch.long, device=x.device), targeted)
        return AttackResult(adversarial=adv, success=torch.isfinite(norms), norms=norms,
                            n_grads=int(n_grads[0]), runtime_s=time.perf_counter() - start)

    def run_groups(
        self, x: torch.Tensor, y: torch.Tensor, learning_rate: torch.Tensor,
        initial_const: torch.Tensor, groups: torch.Tensor, targeted: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Independent attacks in one batch: sample ``i`` runs with its own ``learning_rate[i]`` and
        first ``initial_const[i]``, and the samples of one ``groups`` value form one attack (early
        abort on their summed loss, as one batch of the original) — how the grid search of
        Table A V-9 runs every setting at once.

        Returns per-sample best norms ``(B,)`` (``inf`` where none fooled the model), the
        adversarial inputs ``(B, ...)``, and the gradients computed per group ``(G,)``.
        Adam is written out (β = (0.9, 0.999), ε = 1e-8, as ``torch.optim.Adam``) so that
        its step size can differ per sample.
        """
        x = x.detach()
        b, n_groups = x.shape[0], int(groups.max()) + 1
        shape = (b,) + (1,) * (x.ndim - 1)
        lr = learning_rate.to(x).reshape(shape)
        unit = ((x - self.low) / (self.high - self.low)).clamp(1e-6, 1 - 1e-6)
        w0 = torch.atanh(2 * unit - 1)
        const = initial_const.to(x).clone()
        lower = torch.zeros_like(const)
        upper = torch.full_like(const, math.inf)
        best_norm = torch.full((b,), math.inf, device=x.device, dtype=x.dtype)
        best_adv = x.clone()
        n_grads = torch.zeros(n_groups, dtype=torch.long)
        beta1, beta2, eps = 0.9, 0.999, 1e-8
        with preserved_model_state(self.model):
            self.model.eval()
            for p in self.model.parameters():
                p.requires_grad_(False)
            for _ in range(self.search_steps):
                w = w0.clone().requires_grad_(True)
                m, v = torch.zeros_like(w0), torch.zeros_like(w0)
                active = torch.ones(n_groups, dtype=torch.bool)
                found = torch.zeros(b, dtype=torch.bool, device=x.device)
                check_every = max(self.steps // 10, 1)
                previous = torch.full((n_groups,), math.inf, dtype=torch.float64)
                for i in range(self.steps):
                    adv = self._to_box(w)
                    logits = self.model(adv)
                    sq = (adv - x).flatten(1).pow(2).sum(1)
                    loss = sq + const * self._margin(logits, y, targeted)
                    (grad,) = torch.autograd.grad(loss.sum(), w)
                    moving = active.to(x.device)[groups]
                    n_grads += active.long()
                    with torch.no_grad():
                        m = torch.where(moving.reshape(shape), beta1 * m + (1 - beta1) * grad, m)
                        v = torch.where(moving.reshape(shape), beta2 * v + (1 - beta2) * grad * grad, v)
                        step = (i + 1)
                        update = lr / (1 - beta1 ** step) * m / (v.sqrt() / math.sqrt(1 - beta2 ** step) + eps)
                        w = (w - moving.reshape(shape) * update).requires_grad_(True)
                        ok = is_adversarial(logits, y, targeted) & moving
                        norm = sq.sqrt()
                        better = ok & (norm < best_norm)
                        best_norm = torch.where(better, norm, best_norm)
                        best_adv[better] = adv.detach()[better]
                        found |= ok
                    if self.abort_early and i % check_every == 0:
                        group_loss = torch.zeros(n_groups, dtype=torch.float64).index_add_(
                            0, groups.cpu(), loss.detach().double().cpu())
                        active &= ~(group_loss > 0.9999 * previous)
                        previous = torch.where(active, group_loss, previous)
                        if not active.any():
                            break
                # binary search on C: smaller when successful, larger (×10 until bracketed) otherwise
                upper = torch.where(found, torch.minimum(upper, const), upper)
                lower = torch.where(found, lower, torch.maximum(lower, const))
                bracketed = torch.isfinite(upper)
                const = torch.where(bracketed, (lower + upper) / 2, const * 10)
        return best_norm, best_adv, n_grads
