"""The learner contract suite, importable by plugin authors.

``check_learner("myalgo")`` runs the same checks ``tests/contract/`` runs over every registered
learner: output shapes, ``adapt`` never mutating the learner, grad mode (in eval mode, ``adapt``
under the harness's grad mode builds no graph back to the parameters; a forward-pass learner builds
none under ``torch.no_grad()``), ``meta_loss``'s metric in eval mode equal to the harness's score of
``predict(adapt(...))`` episode by episode, the meta-gradient reaching the parameters of the model
given to it, determinism given a seed, and each optional capability the learner declares
(:mod:`metazoo.testing.capabilities`: a gradient learner's members and one step of the engine's
training step, an outer step, block scoring, evaluation settings). A broken rule raises
:class:`ContractError` naming the learner and the rule (an exception, not an ``assert``: it also
fires under ``python -O``).
"""

from __future__ import annotations

import copy
import inspect
import math
from collections.abc import Callable, Iterator
from typing import Any

import torch
from torch import Tensor, nn

from metazoo._registry import create_learner
from metazoo.build import fields_it_takes, learner_tasks, model_kind
from metazoo.episode import EpisodeBatch
from metazoo.learner import OuterStepLearner, adaptation_grad_mode, adapts_by_gradient
from metazoo.metrics import episode_score
from metazoo.models import make_backbone
from metazoo.testing.capabilities import check_capabilities

__all__ = ["ContractError", "check_learner", "synthetic_batch", "default_model"]

WAYS, SHOTS, QUERIES, TASKS = 3, 2, 3, 2
IMAGE_SHAPE = (1, 28, 28)


class ContractError(AssertionError):
    """A learner broke a rule of the :class:`~metazoo.learner.MetaLearner` contract.

    The message names the learner, the rule and what to change. A subclass of ``AssertionError``
    so test runners report it as a failed check, but always raised explicitly.
    """


def _require(ok: bool, message: str) -> None:
    if not ok:
        raise ContractError(message)


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


def _takes(method: Callable, *names: str) -> bool:
    """Whether ``method`` can be called with ``names`` as positional arguments."""
    try:
        inspect.signature(method).bind(*names)
    except TypeError:
        return False
    return True


def _check_signatures(name: str, learner: nn.Module) -> None:
    """The contract's signatures, checked first: a plugin written for an older one is told
    what to change rather than failing inside the harness."""
    _require(
        _takes(learner.meta_loss, "batch", "step"),
        f"{name}: meta_loss must take (batch, step=None): the trainer passes the 0-based "
        "training step (ignore it when no schedule reads it)",
    )
    _require(
        _takes(learner.adapt, "support_x", "support_y", "ways"),
        f"{name}: adapt must take (support_x, support_y, ways): ways is the task's number of "
        "classes (None for regression), which the harness passes; do not derive it from labels",
    )


def _state_snapshot(module: nn.Module) -> dict[str, Tensor]:
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def _check_shapes_and_purity(name: str, learner: nn.Module, batch: EpisodeBatch, task: str) -> None:
    before = _state_snapshot(learner)
    episode = batch.task(0)
    with torch.enable_grad():
        state = learner.adapt(episode.support_x, episode.support_y, episode.ways)
    out = learner.predict(state, episode.query_x)
    expected = (
        (episode.query_x.shape[0], WAYS)
        if task == "classification"
        else tuple(episode.query_y.shape)
    )
    _require(
        tuple(out.shape) == expected,
        f"{name}: predict returned {tuple(out.shape)}, expected {expected}",
    )
    after = _state_snapshot(learner)
    for key, value in before.items():
        _require(torch.equal(value, after[key]), f"{name}: adapt() changed the learner's {key!r}")
    _require(
        all(p.grad is None for p in learner.parameters()),
        f"{name}: adapt() left .grad on parameters",
    )


def _tensors(state: Any) -> Iterator[Tensor]:
    """Every tensor inside a task state (tensor, dict, list, tuple, NamedTuple)."""
    if isinstance(state, Tensor):
        yield state
    elif isinstance(state, dict):
        for value in state.values():
            yield from _tensors(value)
    elif isinstance(state, (list, tuple)):
        for value in state:
            yield from _tensors(value)


def _attached(state: Any, learner: nn.Module) -> bool:
    """Whether any tensor of ``state`` has a graph back to the learner's parameters."""
    tracked = [t for t in _tensors(state) if t.requires_grad]
    params = [p for p in learner.parameters() if p.requires_grad]
    if not tracked or not params:
        return False
    with torch.enable_grad():
        total = sum(t.sum() for t in tracked)
        grads = torch.autograd.grad(total, params, allow_unused=True)
    return any(g is not None for g in grads)


def _check_grad_mode(name: str, learner: nn.Module, batch: EpisodeBatch) -> None:
    """Eval-mode ``adapt`` under the harness's grad mode, and a forward learner's ``adapt`` under
    ``no_grad``, return states with no graph back to the parameters."""
    episode = batch.task(0)
    forward = not adapts_by_gradient(learner)
    if forward:
        learner.train()
        with torch.no_grad():
            state = learner.adapt(episode.support_x, episode.support_y, episode.ways)
        _require(
            not _attached(state, learner),
            f"{name}: declares adapts_by_gradient = False, yet adapt() under torch.no_grad() "
            "returned a state attached to its parameters; do not switch grad mode on inside "
            "adapt (the harness sets it)",
        )
    learner.eval()
    with adaptation_grad_mode(learner):
        state = learner.adapt(episode.support_x, episode.support_y, episode.ways)
    hint = (
        "detach the adapted state in eval mode (test-time adaptation builds no outer graph)"
        if forward or getattr(type(learner), "adapts_by_gradient", None) is not None
        else "if adapt is a forward pass, set the class attribute adapts_by_gradient = False "
        "(the harness then runs it under torch.no_grad()); otherwise detach the adapted state "
        "in eval mode"
    )
    mode = "torch.no_grad()" if forward else "torch.enable_grad()"
    _require(
        not _attached(state, learner),
        f"{name}: in eval mode, adapt() under the harness's {mode} returned a state attached to "
        f"the learner's parameters; {hint}",
    )


def _check_metric_agreement(name: str, learner: nn.Module, batch: EpisodeBatch) -> None:
    """In eval mode, ``meta_loss`` on one episode reports the score the harness gives it."""
    learner.eval()
    key = "mse" if batch.is_regression else "accuracy"
    for index in range(len(batch)):
        episode = batch.task(index)
        _, metrics = learner.meta_loss(EpisodeBatch.stack([episode]))
        _require(
            key in metrics,
            f"{name}: meta_loss metrics {sorted(metrics)} lack {key!r} (accuracy in % for "
            "classification, mse for regression)",
        )
        with adaptation_grad_mode(learner):
            state = learner.adapt(episode.support_x, episode.support_y, episode.ways)
        with torch.no_grad():
            expected = float(
                episode_score(learner.predict(state, episode.query_x), episode.query_y)
            )
        _require(
            math.isclose(metrics[key], expected, rel_tol=1e-4, abs_tol=1e-4),
            f"{name}: in eval mode, meta_loss reported {key} {metrics[key]!r} on episode {index}, "
            f"but predict(adapt(...)) scores {expected!r} there (as the harness computes it: "
            "metazoo.metrics.episode_score, accuracy in %); report the same number",
        )


def _check_meta_gradient(name: str, learner: nn.Module, batch: EpisodeBatch) -> float:
    if isinstance(learner, OuterStepLearner):
        before = _state_snapshot(learner)
        optimizer = torch.optim.SGD(learner.parameters(), lr=0.1)
        metrics = learner.outer_step(batch, optimizer, 0)
        _require(
            isinstance(metrics, dict) and all(isinstance(v, float) for v in metrics.values()),
            f"{name}: outer_step must return a dict of float metrics, got {metrics!r}",
        )
        moved = any(not torch.equal(v, learner.state_dict()[k]) for k, v in before.items())
        _require(moved, f"{name}: outer_step did not change any parameter")
        return float(metrics.get("loss", 0.0))
    loss, metrics = learner.meta_loss(batch, 0)
    _require(
        loss.dim() == 0 and bool(torch.isfinite(loss)),
        f"{name}: meta_loss must be a finite scalar, got {loss}",
    )
    _require(
        all(isinstance(v, float) for v in metrics.values()),
        f"{name}: metrics must be floats: {metrics}",
    )
    loss.backward()
    grads = [p.grad for p in learner.parameters() if p.requires_grad]
    _require(
        bool(grads) and all(g is not None for g in grads),
        f"{name}: some parameters got no meta-gradient",
    )
    _require(any(g.abs().sum() > 0 for g in grads), f"{name}: the meta-gradient is zero everywhere")
    model = getattr(learner, "model", None)
    if model is not None:
        _require(
            any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters()),
            f"{name}: the meta-gradient does not reach the model passed to create_learner",
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
        ContractError: naming the learner, the broken rule and what to change.
    """
    for task in learner_tasks(name):
        batch = synthetic_batch(task, seed=seed)
        learner = _build(name, task, seed, model_factory)
        _check_signatures(name, learner)
        twin, probe = copy.deepcopy(learner), copy.deepcopy(learner)
        _check_shapes_and_purity(name, learner, batch, task)
        _check_grad_mode(name, probe, batch)
        _check_metric_agreement(name, probe, batch)
        check_capabilities(name, learner, batch, _require)
        first = _check_meta_gradient(name, learner, batch)
        second = _check_meta_gradient(name, twin, batch)
        _require(
            first == second,
            f"{name}: two identical learners gave different losses {first} != {second}",
        )
        rebuilt = _check_meta_gradient(name, _build(name, task, seed, model_factory), batch)
        _require(
            rebuilt == first, f"{name}: the same seed gave a different loss ({rebuilt} != {first})"
        )
