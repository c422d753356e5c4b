"""Finite-difference checks of meta-gradients, and tiny float64 nets and episodes to run them on.

Used by the correctness gates in ``tests/``; plugin authors can run the same check on their own
learner::

    torch.set_default_dtype(torch.float64)
    model = tiny_conv_net()
    learner = metazoo.create_learner("maml", model, inner_lr=0.3, inner_steps=3)
    report = check_meta_gradient(learner, tiny_batch("classification"))
    assert report.max_error < 1e-6

The check compares the directional derivative of the learner's own ``meta_loss`` along random
directions (one per parameter tensor, plus one through all of them) with central differences.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from metazoo.episode import EpisodeBatch

__all__ = [
    "GradCheckReport",
    "check_meta_gradient",
    "meta_gradient",
    "tiny_conv_net",
    "tiny_mlp",
    "tiny_batch",
    "tiny_learner",
]

TINY_WAYS = 3
TINY_IMAGE = (1, 6, 6)


def tiny_conv_net(
    ways: int = TINY_WAYS, channels: int = 3, track_running_stats: bool = False
) -> nn.Sequential:
    """Conv(3x3) - BatchNorm - ReLU - MaxPool(2) - Linear on ``(1, 6, 6)`` images."""
    return nn.Sequential(
        nn.Conv2d(1, channels, 3, padding=1),
        nn.BatchNorm2d(channels, track_running_stats=track_running_stats),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(channels * 9, ways),
    )


def tiny_mlp(hidden: int = 8) -> nn.Sequential:
    """A 1-hidden-hidden-1 tanh MLP for sinusoid-like regression (smooth, so FD is clean)."""
    return nn.Sequential(
        nn.Linear(1, hidden), nn.Tanh(), nn.Linear(hidden, hidden), nn.Tanh(), nn.Linear(hidden, 1)
    )


def tiny_batch(task: str = "classification", tasks: int = 3, seed: int = 0) -> EpisodeBatch:
    """A meta-batch in the default dtype: 3-way 2-shot 3-query ``(1, 6, 6)`` images, or sinusoids."""
    g = torch.Generator().manual_seed(seed)
    dtype = torch.get_default_dtype()
    if task == "regression":
        x = torch.rand(tasks, 12, 1, generator=g, dtype=dtype) * 10 - 5
        amp = torch.rand(tasks, 1, 1, generator=g, dtype=dtype) * 4.9 + 0.1
        phase = torch.rand(tasks, 1, 1, generator=g, dtype=dtype) * torch.pi
        y = amp * torch.sin(x - phase)
        return EpisodeBatch(x[:, :5], y[:, :5], x[:, 5:], y[:, 5:])
    templates = torch.rand(tasks, TINY_WAYS, *TINY_IMAGE, generator=g, dtype=dtype)

    def draw(per_class: int) -> tuple[Tensor, Tensor]:
        labels = torch.arange(TINY_WAYS).repeat(per_class).expand(tasks, -1).clone()
        base = torch.stack([templates[t, labels[t]] for t in range(tasks)])
        return base + 0.5 * torch.randn(base.shape, generator=g, dtype=dtype), labels

    classes = torch.stack([torch.randperm(10, generator=g)[:TINY_WAYS] for _ in range(tasks)])
    return EpisodeBatch(*draw(2), *draw(3), TINY_WAYS, classes)


@dataclass
class GradCheckReport:
    """Analytic vs finite-difference directional derivatives.

    Attributes:
        names: what each direction perturbs (a parameter name, or ``all``).
        analytic: ``g . v`` per direction.
        numeric: ``(L(theta + h v) - L(theta - h v)) / 2h`` per direction.
        max_error: max over directions of ``|analytic - numeric| / (|numeric| + ||g|| ||v|| 1e-3)``.
    """

    names: list[str]
    analytic: list[float]
    numeric: list[float]
    max_error: float


def _directions(
    params: list[tuple[str, nn.Parameter]], seed: int
) -> list[tuple[str, list[Tensor]]]:
    g = torch.Generator().manual_seed(seed)
    rand = [torch.randn(p.shape, generator=g, dtype=p.dtype).to(p.device) for _, p in params]
    out = [("all", rand)]
    for i, (name, p) in enumerate(params):
        one = [torch.zeros_like(r) for r in rand]
        one[i] = torch.randn(p.shape, generator=g, dtype=p.dtype).to(p.device)
        out.append((name, one))
    return out


@torch.no_grad()
def _shift(params: list[nn.Parameter], direction: list[Tensor], scale: float) -> None:
    for p, v in zip(params, direction):
        p.add_(v.to(p.device), alpha=scale)


def check_meta_gradient(
    learner: nn.Module,
    batch: EpisodeBatch,
    step: float = 1e-6,
    seed: int = 0,
    objective: Callable[[nn.Module, EpisodeBatch], Tensor] | None = None,
) -> GradCheckReport:
    """Compare ``d meta_loss`` with central differences along random directions.

    Args:
        learner: in training mode; its parameters are perturbed and restored.
        batch: the meta-batch, in the learner's dtype (float64 for a meaningful check).
        step: the finite-difference step ``h``.
        seed: seed of the random directions.
        objective: ``(learner, batch) -> scalar``; default ``learner.meta_loss(batch)[0]``.
    """
    objective = objective or (lambda lrn, b: lrn.meta_loss(b)[0])
    named = [(n, p) for n, p in learner.named_parameters() if p.requires_grad]
    params = [p for _, p in named]
    grads = torch.autograd.grad(objective(learner, batch), params, allow_unused=True)
    grads = [torch.zeros_like(p) if g is None else g for p, g in zip(params, grads)]
    names, analytic, numeric, worst = [], [], [], 0.0
    for name, direction in _directions(named, seed):
        _shift(params, direction, step)
        plus = objective(learner, batch).item()
        _shift(params, direction, -2 * step)
        minus = objective(learner, batch).item()
        _shift(params, direction, step)
        a = float(sum((g * v).sum() for g, v in zip(grads, direction)))
        fd = (plus - minus) / (2 * step)
        scale = float(
            torch.sqrt(sum((g * g).sum() for g in grads))
            * torch.sqrt(sum((v * v).sum() for v in direction))
        )
        worst = max(worst, abs(a - fd) / (abs(fd) + 1e-3 * scale + 1e-12))
        names.append(name)
        analytic.append(a)
        numeric.append(fd)
    return GradCheckReport(names, analytic, numeric, worst)


def tiny_learner(name: str, kind: str, steps: int, **config) -> tuple[nn.Module, EpisodeBatch]:
    """Learner ``name`` around a tiny conv net with BatchNorm (``kind='conv'``, 3-way images) or a
    tiny MLP (``kind='mlp'``, sinusoid regression), with its meta-batch, in the default dtype."""
    import metazoo  # local: the registry imports the learners, which import the engine

    torch.manual_seed(0)
    if kind == "conv":
        model, batch = tiny_conv_net(), tiny_batch("classification")
        config = {"inner_lr": 0.3, "task": "classification", **config}
    else:
        model, batch = tiny_mlp(), tiny_batch("regression")
        config = {"inner_lr": 0.02, "task": "regression", **config}
    learner = metazoo.create_learner(name, model, inner_steps=steps, **config)
    return learner, batch


def meta_gradient(learner: nn.Module, batch: EpisodeBatch) -> Tensor:
    """The flattened ``d meta_loss / d parameters`` of ``learner`` (zeros where unused)."""
    params = [p for p in learner.parameters() if p.requires_grad]
    grads = torch.autograd.grad(learner.meta_loss(batch)[0], params, allow_unused=True)
    return torch.cat(
        [(torch.zeros_like(p) if g is None else g).flatten() for p, g in zip(params, grads)]
    )
