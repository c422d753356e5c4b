"""Free functions of the MAML family (:mod:`metazoo.learners.maml`): head selection, BatchNorm
parameter names, learned inner rates and MAML++'s multi-step loss importances."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor, nn

__all__ = [
    "ADAPT_CHOICES",
    "LEARNED_LRS",
    "head_parameter_names",
    "batch_norm_parameter_names",
    "initial_rates",
    "multi_step_loss_weights",
]

#: Which weights the inner loop adapts: every parameter (MAML), or the head (ANIL).
ADAPT_CHOICES = ("all", "head")
#: How inner learning rates are held: the fixed float ``inner_lr``, a learned tensor per
#: parameter (Meta-SGD), or a learned scalar per parameter tensor and inner step (MAML++'s LSLR).
LEARNED_LRS = ("none", "per_parameter", "per_step")


def head_parameter_names(model: nn.Module, prefix: str | None = None) -> tuple[str, ...]:
    """Names of the head's parameters: those under ``prefix``, or of the last ``nn.Linear``.

    Raises:
        ValueError: when nothing matches, listing the model's parameter names.
    """
    names = [n for n, _ in model.named_parameters()]
    if prefix is None:
        linears = [name for name, m in model.named_modules() if isinstance(m, nn.Linear)]
        if not linears:
            raise ValueError(
                f"{type(model).__name__} has no nn.Linear layer to use as the head: set the "
                f"`head` config to a parameter-name prefix; parameters are {names}"
            )
        prefix = linears[-1]
    chosen = tuple(n for n in names if n == prefix or n.startswith(f"{prefix}." if prefix else ""))
    if not chosen:
        raise ValueError(f"head prefix {prefix!r} matches no parameter; parameters are {names}")
    return chosen


def batch_norm_parameter_names(model: nn.Module) -> list[str]:
    """Names of the affine weights and biases of the model's BatchNorm layers."""
    names = []
    for mod_name, module in model.named_modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm) and module.affine:
            prefix = f"{mod_name}." if mod_name else ""
            names += [f"{prefix}weight", f"{prefix}bias"]
    return names


def initial_rates(
    params: Mapping[str, Tensor], names: tuple[str, ...], config: Any, steps: int
) -> nn.ParameterList:
    """The learned inner rates of ``names`` (empty when ``config.learned_lrs`` is ``none``).

    ``per_parameter``: a tensor shaped as the parameter, ``inner_lr`` or drawn uniformly from
    ``[lr_init_low, lr_init_high]`` with ``random_init``. ``per_step``: ``(steps,)`` of ``inner_lr``.
    """
    rates = []
    for n in names if config.learned_lrs != "none" else ():
        p = params[n].detach()
        if config.learned_lrs == "per_step":
            init = torch.full((steps,), config.inner_lr, dtype=p.dtype, device=p.device)
        elif config.random_init:
            init = torch.empty_like(p).uniform_(config.lr_init_low, config.lr_init_high)
        else:
            init = torch.full_like(p, config.inner_lr)
        rates.append(nn.Parameter(init))
    return nn.ParameterList(rates)


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
