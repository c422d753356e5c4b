"""The one accuracy function (percent of correct argmax predictions) and the per-episode score.

Every place that reports accuracy (learners' ``meta_loss``, the engine's task metric, the
evaluation harness) calls :func:`accuracy`, so accuracy is in percent everywhere. This module
imports only torch, so any layer may use it.
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["accuracy", "episode_score"]


def accuracy(logits: Tensor, labels: Tensor) -> Tensor:
    """Percent of rows whose argmax is the label, as a detached 0-dim tensor.

    Args:
        logits: ``(*batch, M, N)`` scores (logits, log-probabilities or relation scores).
        labels: ``(*batch, M)`` labels in ``0..N-1``.

    Returns:
        A 0-dim tensor in ``[0, 100]``, in ``logits``' dtype when it is floating point: the
        percentage over every row of every leading batch entry.
    """
    logits = logits.detach()
    dtype = logits.dtype if logits.is_floating_point() else torch.float32
    return 100.0 * (logits.argmax(dim=-1) == labels).to(dtype).mean()


def episode_score(prediction: Tensor, query_y: Tensor) -> Tensor:
    """One episode's detached metric, as the harness and every ``meta_loss`` report it.

    Args:
        prediction: ``(M, N)`` scores for classification, or ``(M, *y)`` regression outputs.
        query_y: ``(M,)`` integer labels, or ``(M, *y)`` float targets.

    Returns:
        A 0-dim tensor: :func:`accuracy` in % for integer labels, the MSE for float targets.
    """
    if query_y.is_floating_point():
        prediction = prediction.detach().reshape(query_y.shape)
        return torch.mean((prediction - query_y) ** 2)
    return accuracy(prediction, query_y)
