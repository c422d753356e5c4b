"""MAML++.

Antoniou, Edwards and Storkey. "How to train your MAML." ICLR 2019.

MAML++ stabilises and improves MAML with: learned per-layer per-step inner learning rates (LSLR);
a multi-step loss, the query loss after every inner step weighted by importances that anneal
towards the final step over the first training steps (MSL); per-step BatchNorm weights and biases
(one set per inner step, not adapted in the inner loop; BNWB), with batch statistics at every step
(BNRS in the reference code calls batch_norm with ``training=True``, so statistics are those of
the current batch); and derivative-order annealing, first-order meta-gradients for the first
``first_order_steps`` training steps and second order afterwards (DA). The learner counts its own
training calls (``meta_loss`` or ``meta_backward`` in training mode with autograd on) in the
``training_step`` buffer.
Cosine annealing of the outer learning rate belongs to the trainer (``lr_schedule='cosine'``).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from metazoo import engine
from metazoo._registry import register_learner
from metazoo.episode import EpisodeBatch
from metazoo.learners.maml import MAML

__all__ = ["MAMLPlusPlus", "multi_step_loss_weights"]


def multi_step_loss_weights(steps: int, progress: float, floor: float = 0.03) -> Tensor:
    """MAML++'s per-step loss importances.

    Uniform ``1/steps`` at ``progress`` 0; non-final weights decay linearly to ``floor/steps`` and
    the final weight grows to ``1 - (steps-1) * floor/steps`` at ``progress`` 1.

    Args:
        steps: inner steps N.
        progress: fraction of the annealing period elapsed, in [0, 1].
        floor: the reference code's minimum for non-final weights (times ``1/steps``).

    Returns:
        ``(steps,)`` float64 weights.
    """
    n = steps
    weights = torch.full((n,), 1.0 / n, dtype=torch.float64)
    low = floor / n
    weights[:-1] = torch.clamp(weights[:-1] - progress / n, min=low)
    weights[-1] = min(1.0 / n + progress * (n - 1) / n, 1.0 - (n - 1) * low)
    return weights


def _batch_norm_parameter_names(model: nn.Module) -> list[str]:
    names = []
    for mod_name, module in model.named_modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm) and module.affine:
            prefix = f"{mod_name}." if mod_name else ""
            names += [f"{prefix}weight", f"{prefix}bias"]
    return names


@register_learner("mamlpp", family="optimization")
class MAMLPlusPlus(MAML):
    """MAML++ around ``model`` (any ``nn.Module``; BatchNorm layers get per-step weights)."""

    @dataclass
    class Config(MAML.Config):
        """MAML++ settings: MAML's plus the paper's five switches."""

        #: Inner steps (the paper: 5).
        inner_steps: int = 5
        #: BatchNorm policy: ``per_step`` (batch statistics at every step; the paper).
        bn_policy: str = "per_step"
        #: Learn a learning rate per parameter tensor and inner step (LSLR), from ``inner_lr``.
        learnable_lrs: bool = True
        #: Multi-step loss with annealed importances (MSL).
        multi_step_loss: bool = True
        #: Training steps over which MSL anneals to the final-step loss only.
        msl_anneal_steps: int = 5000
        #: Per-step BatchNorm weights and biases, excluded from the inner loop (BNWB).
        per_step_bn_weights: bool = True
        #: First-order meta-gradients for this many training steps, then second order (DA).
        first_order_steps: int = 0

    def __init__(self, model: nn.Module | None, config: Config):
        super().__init__(model, config)
        params = dict(self.model.named_parameters())
        per_step_bn = config.per_step_bn_weights and config.inner_steps > 1
        self.bn_names = _batch_norm_parameter_names(self.model) if per_step_bn else []
        self.adapt_names = tuple(
            n for n, p in params.items() if p.requires_grad and n not in self.bn_names
        )
        steps = max(config.inner_steps, 1)
        #: ``step_lrs[i][s]``: learned rate of parameter ``adapt_names[i]`` at step ``s``.
        self.step_lrs = nn.ParameterList(
            [
                nn.Parameter(
                    torch.full(
                        (steps,), config.inner_lr, dtype=params[n].dtype, device=params[n].device
                    ),
                    requires_grad=config.learnable_lrs,
                )
                for n in self.adapt_names
            ]
        )
        #: ``step_bn[i][s - 1]``: BatchNorm parameter ``bn_names[i]`` at inner step ``s >= 1``
        #: (step 0 uses the model's own).
        self.step_bn = nn.ParameterList(
            [
                nn.Parameter(params[n].detach().clone().expand(steps - 1, -1).clone())
                for n in self.bn_names
            ]
        )
        #: Training calls of ``meta_loss`` so far (drives MSL and DA annealing).
        self.register_buffer("training_step", torch.zeros((), dtype=torch.long))

    def inner_loop(self, training: bool) -> engine.InnerLoop:
        """MAML's inner loop without BatchNorm weights, first order during the DA warm-up."""
        loop = super().inner_loop(training)
        names = getattr(self, "adapt_names", None)
        if names is not None:
            loop = dataclasses.replace(loop, adapt_names=names)
        if training and int(getattr(self, "training_step", 0)) < self.config.first_order_steps:
            loop = dataclasses.replace(loop, first_order=True)
        return loop

    def learning_rates(self) -> list[dict[str, Tensor]]:
        """One dict per inner step: parameter name -> learned scalar rate."""
        steps = max(self.config.inner_steps, 1)
        return [{n: lr[s] for n, lr in zip(self.adapt_names, self.step_lrs)} for s in range(steps)]

    def overrides(self) -> list[dict[str, Tensor]] | None:
        """Per-step BatchNorm weights: step 0 the model's own, step s the learned set s."""
        if not self.bn_names:
            return None
        steps = max(self.config.inner_steps, 1)
        return [{}] + [
            {n: bn[s - 1] for n, bn in zip(self.bn_names, self.step_bn)} for s in range(1, steps)
        ]

    def step_weights(self) -> Tensor | None:
        """Multi-step loss importances now, or None once annealed (final-step loss only)."""
        cfg = self.config
        if not (self.training and cfg.multi_step_loss and cfg.inner_steps > 1):
            return None
        progress = int(self.training_step) / max(cfg.msl_anneal_steps, 1)
        if progress >= 1.0:
            return None
        return multi_step_loss_weights(cfg.inner_steps, progress).to(self.step_lrs[0].dtype)

    def objective(
        self, batch: EpisodeBatch, backward_scale: float | None = None
    ) -> tuple[Tensor, dict[str, float]]:
        """The (multi-step) query loss after adaptation; counts training calls."""
        weights = self.step_weights()
        loss, metrics = self.on_batch(
            engine.meta_objective,
            batch,
            step_weights=None if weights is None else weights.to(batch.query_x.device),
            backward_scale=backward_scale,
        )
        if self.training and torch.is_grad_enabled():
            self.training_step += 1
        return loss, metrics

    def adapt(self, support_x: Tensor, support_y: Tensor) -> dict[str, Tensor]:
        """Fast weights for one task, with the BatchNorm weights of the last step merged in."""
        fast = super().adapt(support_x, support_y)
        overrides = self.overrides()
        if overrides:
            steps = self.inner_loop(self.training).steps
            last = engine.inner.override_at(overrides, steps - 1)
            if not (self.training and torch.is_grad_enabled()):
                last = {n: w.detach() for n, w in last.items()}
            fast = {**fast, **last}
        return fast
