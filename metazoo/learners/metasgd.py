"""Meta-SGD: learning the inner learning rates along with the initialisation.

Li, Zhou, Chen and Li. "Meta-SGD: Learning to Learn Quickly for Few-Shot Learning."
arXiv:1707.09835, 2017.

Meta-SGD replaces MAML's scalar step size by a learned tensor of the same shape as each parameter:
the inner update is ``theta - alpha * grad`` with ``*`` elementwise, so both the update direction
and its size are meta-learned. The rates ``alpha`` are ``nn.Parameter``s of the learner, trained by
the outer optimizer with the initialisation (the paper uses one inner step).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from metazoo._registry import register_learner
from metazoo.learners.maml import MAML

__all__ = ["MetaSGD"]


@register_learner("metasgd", family="optimization")
class MetaSGD(MAML):
    """MAML with learned per-parameter inner learning rates."""

    @dataclass
    class Config(MAML.Config):
        """Meta-SGD settings: MAML's; ``inner_lr`` is the initial value of every learned rate."""

        #: Draw the initial rates uniformly from [lr_init_low, lr_init_high] (the paper's
        #: [0.005, 0.1]) instead of the constant ``inner_lr``; drawn from the global torch RNG.
        random_init: bool = False
        #: Lower end of the random initial rates.
        lr_init_low: float = 0.005
        #: Upper end of the random initial rates.
        lr_init_high: float = 0.1

    def __init__(self, model: nn.Module | None, config: Config):
        super().__init__(model, config)
        self.lr_names = [n for n, p in self.model.named_parameters() if p.requires_grad]
        rates = []
        for name in self.lr_names:
            p = dict(self.model.named_parameters())[name]
            if config.random_init:
                init = torch.empty_like(p).uniform_(config.lr_init_low, config.lr_init_high)
            else:
                init = torch.full_like(p, config.inner_lr)
            rates.append(nn.Parameter(init.detach()))
        #: ``inner_lrs[i]`` is the learned rate tensor of parameter ``lr_names[i]`` (same shape).
        self.inner_lrs = nn.ParameterList(rates)

    def learning_rates(self) -> dict[str, Tensor]:
        """name -> learned rate tensor of the parameter's shape."""
        return dict(zip(self.lr_names, self.inner_lrs))
