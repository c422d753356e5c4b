"""BatchNorm policies for functional adaptation, applied to any ``nn.Module`` without editing it.

Every BatchNorm layer of a PyTorch model ends in ``torch.nn.functional.batch_norm``. While a
:class:`BatchNormMode` is active (a :class:`torch.overrides.TorchFunctionMode`), that call gets
the policy's arguments; under ``vmap`` it is rerouted to :func:`batch_norm_plain`, written in plain
tensor ops, while outside ``vmap`` the native op runs (fused, exact to any derivative order, and
closer to float64 in fp32). Two reasons for the mode:

* under ``torch.func.vmap``, the native ``F.batch_norm`` in training mode gives a wrong
  second-order meta-gradient (about 1-2% off in the preceding conv weight, torch 2.14.1, checked
  against central finite differences), while mean/var in plain ops are exact;
* the policy becomes explicit and recorded instead of following ``module.training``.

Policies (:data:`BN_POLICIES`):

``transductive``
    Batch statistics of the current forward pass at meta-training and meta-test time; running
    buffers are neither read nor written. The MAML reference implementation; the default.
``per_step``
    As ``transductive`` (MAML++'s reference calls ``batch_norm`` with ``training=True`` at train
    and test time too); learners pair it with per-step affine weights (see ``mamlpp``).
``running``
    The module decides: in ``train()`` mode batch statistics with the running buffers updated
    in place, in ``eval()`` mode the running statistics. In-place updates cannot happen inside
    ``vmap``, so the vectorized executor refuses this policy while the learner is training.
"""

from __future__ import annotations

import contextlib
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.overrides import TorchFunctionMode

__all__ = [
    "BN_POLICIES",
    "BatchNormMode",
    "BatchNormArgs",
    "batch_norm_plain",
    "bn_mode",
    "check_bn_policy",
    "needs_mode",
]

#: The recorded choices of BatchNorm behaviour.
BN_POLICIES = ("transductive", "per_step", "running")


class BatchNormArgs(NamedTuple):
    """The arguments of ``F.batch_norm`` by name, defaults filled in: ``BatchNormArgs(*args,
    **kwargs)`` (``torch.compile`` traces it, where it breaks the graph at
    ``inspect.Signature.bind``)."""

    input: Tensor
    running_mean: Tensor | None
    running_var: Tensor | None
    weight: Tensor | None = None
    bias: Tensor | None = None
    training: bool = False
    momentum: float = 0.1
    eps: float = 1e-5


def check_bn_policy(policy: str) -> str:
    """Return ``policy`` or raise a ValueError listing the valid ones."""
    if policy not in BN_POLICIES:
        raise ValueError(f"bn_policy must be one of {BN_POLICIES}, got {policy!r}")
    return policy


def _values_per_channel(x: Tensor) -> int:
    """Values each channel's batch statistics average over (the native op refuses 1)."""
    return x.numel() // max(x.shape[1], 1) if x.dim() > 1 else x.numel()


def needs_mode(model: torch.nn.Module, policy: str, vectorized: bool) -> bool:
    """Whether a forward pass needs :class:`BatchNormMode` for ``policy``.

    Outside ``vmap`` a model with no running statistics already normalises with the batch's
    statistics (the ``transductive`` behaviour), so the mode's per-op Python dispatch is skipped.
    """
    if vectorized or policy == "running":
        return vectorized
    return any(name.endswith("running_mean") for name, _ in model.named_buffers())


def _channel_shape(x: Tensor) -> tuple[int, ...]:
    return (1, x.shape[1]) + (1,) * (x.dim() - 2)


def batch_norm_plain(
    x: Tensor,
    weight: Tensor | None,
    bias: Tensor | None,
    eps: float,
    mean: Tensor | None = None,
    var: Tensor | None = None,
) -> Tensor:
    """BatchNorm in plain tensor ops (exact under ``vmap`` to any derivative order).

    Args:
        x: ``(B, C, *spatial)`` input.
        weight: ``(C,)`` scale or None.
        bias: ``(C,)`` shift or None.
        eps: added to the variance.
        mean: ``(C,)`` statistics to use (running mean); None for the batch mean over
            ``(B, *spatial)``.
        var: ``(C,)`` statistics to use (running variance); None for the biased batch variance.

    Returns:
        ``(B, C, *spatial)`` normalised, scaled and shifted input.
    """
    shape = _channel_shape(x)
    if mean is None or var is None:
        dims = [0, *range(2, x.dim())]
        mean_b = x.mean(dim=dims, keepdim=True)
        centred = x - mean_b
        var_b = (centred * centred).mean(dim=dims, keepdim=True)
    else:
        centred = x - mean.reshape(shape)
        var_b = var.reshape(shape)
    out = centred / torch.sqrt(var_b + eps)
    if weight is not None:
        out = out * weight.reshape(shape)
    if bias is not None:
        out = out + bias.reshape(shape)
    return out


class BatchNormMode(TorchFunctionMode):
    """Give every ``F.batch_norm`` call the policy's statistics: the native op outside ``vmap``,
    :func:`batch_norm_plain` under it (use :func:`bn_mode`, which skips the mode where the model
    needs none).

    Use as a context manager around a functional forward pass::

        with BatchNormMode("transductive", vectorized=True):
            out = torch.func.vmap(task_fn)(...)

    Args:
        policy: one of :data:`BN_POLICIES`.
        vectorized: True inside ``vmap`` (where in-place running-statistics updates are refused).
    """

    def __init__(self, policy: str, vectorized: bool = False):
        super().__init__()
        self.policy = check_bn_policy(policy)
        self.vectorized = vectorized

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func is not F.batch_norm:
            return func(*args, **kwargs)
        a = BatchNormArgs(*args, **kwargs)
        if not self.vectorized:  # the native op: exact outside vmap, fused, closer in fp32
            if self.policy == "running":
                return func(*args, **kwargs)  # the module decides; updates the buffers
            if _values_per_channel(a.input) > 1:
                return func(a.input, None, None, a.weight, a.bias, True, 0.0, a.eps)
        if self.policy in ("transductive", "per_step"):
            return batch_norm_plain(a.input, a.weight, a.bias, a.eps)
        if not a.training:
            return batch_norm_plain(a.input, a.weight, a.bias, a.eps, a.running_mean, a.running_var)
        if a.running_mean is None:
            return batch_norm_plain(a.input, a.weight, a.bias, a.eps)
        raise RuntimeError(
            "bn_policy='running' updates BatchNorm running statistics in place, which vmap "
            "cannot do while training; use executor='sequential' or bn_policy='transductive'"
        )


def bn_mode(model: torch.nn.Module, policy: str, vectorized: bool):
    """:class:`BatchNormMode` for ``policy``, or a null context where the model needs none."""
    if needs_mode(model, policy, vectorized):
        return BatchNormMode(policy, vectorized=vectorized)
    return contextlib.nullcontext()
