"""The outer optimizer and learning-rate schedule the trainer builds from a :class:`TrainConfig`."""

from __future__ import annotations

import torch
from torch import nn

from metazoo.evaluation.harness import learner_name
from metazoo.training.config import TrainConfig

__all__ = ["make_optimizer", "make_scheduler"]


def make_optimizer(learner: nn.Module, config: TrainConfig) -> torch.optim.Optimizer:
    """The outer optimizer over the learner's trainable parameters.

    With ``fast`` (the fast step) on CUDA it is capturable (its state and learning rate live on the device,
    so the optimizer step can be part of a CUDA graph and a schedule still changes the rate).
    """
    params = [p for p in learner.parameters() if p.requires_grad]
    if not params:
        raise ValueError(f"{learner_name(learner)} has no trainable parameters to meta-train")
    lr, extra = config.lr, {}
    if config.fast is not None and params[0].device.type == "cuda":
        lr, extra = torch.tensor(config.lr, device=params[0].device), {"capturable": True}
    if config.optimizer == "sgd":  # no host reads in its step: capturable as it is
        return torch.optim.SGD(
            params, lr=lr, momentum=config.momentum, weight_decay=config.weight_decay
        )
    cls = torch.optim.AdamW if config.optimizer == "adamw" else torch.optim.Adam
    return cls(params, lr=lr, weight_decay=config.weight_decay, **extra)


def make_scheduler(optimizer: torch.optim.Optimizer, config: TrainConfig):
    """The learning-rate schedule stepped once per meta-update, or None for a constant rate."""
    if config.lr_schedule == "step":
        size = config.lr_step_size or max(1, config.steps // 4)
        return torch.optim.lr_scheduler.StepLR(optimizer, step_size=size, gamma=config.lr_gamma)
    if config.lr_schedule == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=config.steps)
    return None
