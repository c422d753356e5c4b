"""The learner contract suite, importable by plugin authors.

``check_learner("myalgo")`` runs the same checks ``tests/contract/`` runs over every registered
learner: output shapes, ``adapt`` never mutating the learner, the meta-gradient reaching the
parameters of the model given to it, and determinism given a seed.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable

import torch
from torch import nn

from metazoo._registry import create_learner
from metazoo.build import fields_it_takes, learner_tasks, model_kind
from metazoo.episode import EpisodeBatch
from metazoo.learner import has_outer_step
from metazoo.models import make_backbone

__all__ = ["check_learner", "synthetic_batch", "default_model"]

WAYS, SHOTS, QUERIES, TASKS = 3, 2, 3, 2
IMAGE_SHAPE = (1, 28, 28)


def synthetic_batch(
    task: str = "classification", tasks: int = TASKS, seed: int = 0
) -> EpisodeBatch:
    """A small meta-batch with learnable structure.

    Classification: ``WAYS``-way ``SHOTS``-shot images ``(1, 28, 28)``, each class a random template
    plus noise. Regression: sinusoids ``y = A sin(x - phi)`` with ``x (n, 1)``.
    """
    g = torch.Generator().manual_seed(seed)
    if task == "regression":
        n_s, n_q = 5, 7
        x = torch.rand(tasks, n_s + n_q, 1, generator=g) * 10 - 5
        amp = torch.rand(tasks, 1, 1, generator=g) * 4.9 + 0.1
        phase = torch.rand(tasks, 1, 1, generator=g) * math.pi
        y = amp * torch.sin(x - phase)
        return EpisodeBatch(x[:, :n_s], y[:, :n_s], x[:, n_s:], y[:, n_s:])
    templates = torch.rand(tasks, WAYS, *IMAGE_SHAPE, generator=g)

    def draw(per_class: int) -> tuple[torch.Tensor, torch.Tensor]:
        labels = torch.arange(WAYS).repeat_interleave(per_class).expand(tasks, -1)
        base = torch.stack([templates[t, labels[t]] for t in range(tasks)])
        return base + 0.3 * torch.randn(base.shape, generator=g), labels.clone()

    sx, sy = draw(SHOTS)
    qx, qy = draw(QUERIES)
    return EpisodeBatch(sx, sy, qx, qy, WAYS)


def default_model(name: str, task: str) -> nn.Module | None:
    """A small network of the kind the learner's card asks for."""
    kind = model_kind(name)
    if kind == "none":
        return None
    if task == "regression":
        return make_backbone(
            "mlp", (1,), out_features=1 if kind == "classifier" else None, hidden_sizes=(16, 16)
        )
    out = WAYS if kind == "classifier" else None
    return make_backbone("conv4", IMAGE_SHAPE, out_features=out, hidden=8)


def _build(name: str, task: str, seed: int, model_factory: Callable | None) -> nn.Module:
    torch.manual_seed(seed)
    model = model_factory(task) if model_factory else default_model(name, task)
    shape = IMAGE_SHAPE if task == "classification" else (1,)
    filled = fields_it_takes(name, {"ways": WAYS, "input_shape": shape, "task": task})
    return create_learner(name, model, **filled)


def _state_snapshot(module: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def _check_shapes_and_purity(name: str, learner: nn.Module, batch: EpisodeBatch, task: str) -> None:
    before = _state_snapshot(learner)
    episode = batch.task(0)
    with torch.enable_grad():
        state = learner.adapt(episode.support_x, episode.support_y)
    out = learner.predict(state, episode.query_x)
    expected = (
        (episode.query_x.shape[0], WAYS)
        if task == "classification"
        else tuple(episode.query_y.shape)
    )
    assert tuple(out.shape) == expected, (
        f"{name}: predict returned {tuple(out.shape)}, expected {expected}"
    )
    after = _state_snapshot(learner)
    for key, value in before.items():
        assert torch.equal(value, after[key]), f"{name}: adapt() changed the learner's {key!r}"
    assert all(p.grad is None for p in learner.parameters()), (
        f"{name}: adapt() left .grad on parameters"
    )


def _check_meta_gradient(name: str, learner: nn.Module, batch: EpisodeBatch) -> float:
    if has_outer_step(learner):
        before = _state_snapshot(learner)
        optimizer = torch.optim.SGD(learner.parameters(), lr=0.1)
        metrics = learner.outer_step(batch, optimizer)
        assert isinstance(metrics, dict), f"{name}: outer_step must return a metrics dict"
        moved = any(not torch.equal(v, learner.state_dict()[k]) for k, v in before.items())
        assert moved, f"{name}: outer_step did not change any parameter"
        return float(metrics.get("loss", 0.0))
    loss, metrics = learner.meta_loss(batch)
    assert loss.dim() == 0 and torch.isfinite(loss), (
        f"{name}: meta_loss must be a finite scalar, got {loss}"
    )
    assert all(isinstance(v, float) for v in metrics.values()), (
        f"{name}: metrics must be floats: {metrics}"
    )
    loss.backward()
    grads = [p.grad for p in learner.parameters() if p.requires_grad]
    assert grads and all(g is not None for g in grads), (
        f"{name}: some parameters got no meta-gradient"
    )
    assert any(g.abs().sum() > 0 for g in grads), f"{name}: the meta-gradient is zero everywhere"
    model = getattr(learner, "model", None)
    if model is not None:
        assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters()), (
            f"{name}: the meta-gradient does not reach the model passed to create_learner"
        )
    return loss.item()


def check_learner(
    name: str, *, model_factory: Callable[[str], nn.Module | None] | None = None, seed: int = 0
) -> None:
    """Run the contract on a registered learner for every task type its card lists.

    Args:
        name: a registered learner name (register a plugin class first, or install it).
        model_factory: ``task -> model`` to use instead of the small default backbone.
        seed: seed for initialisation and data.

    Raises:
        AssertionError: naming the learner and the broken rule.
    """
    for task in learner_tasks(name):
        batch = synthetic_batch(task, seed=seed)
        learner = _build(name, task, seed, model_factory)
        twin = copy.deepcopy(learner)
        _check_shapes_and_purity(name, learner, batch, task)
        first = _check_meta_gradient(name, learner, batch)
        second = _check_meta_gradient(name, twin, batch)
        assert first == second, (
            f"{name}: two identical learners gave different losses {first} != {second}"
        )
        rebuilt = _check_meta_gradient(name, _build(name, task, seed, model_factory), batch)
        assert rebuilt == first, (
            f"{name}: the same seed gave a different loss ({rebuilt} != {first})"
        )
