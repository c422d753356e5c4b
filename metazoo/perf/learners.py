"""Every registered learner as a ``metazoo speed`` contender: ``learner:<name>``.

A learner contender is what a researcher runs: the learner ``build_learner`` makes for the shape's
benchmark card (its backbone, its config; the MAML family takes the shape's inner loop), stepped as
the trainer steps it (``outer_step``, ``meta_backward`` or ``meta_loss(...).backward()``, then
Adam) and scored as the evaluation harness scores it (``score_episodes`` or ``adapt`` then
``predict``). Each learner has its own objective, so its meta-gradient is checked against the
same learner in float64 on the same batch, not against MAML's.

    metazoo speed --learners all             # every registered learner, every shape
    metazoo speed --learners protonet maml   # some of them
"""

from __future__ import annotations

import copy
from collections.abc import Callable

import torch
from torch import Tensor, nn

from metazoo.episode import EpisodeBatch
from metazoo.evaluation.harness import score_block
from metazoo.learner import has_meta_backward, has_outer_step
from metazoo.perf.contenders import Builder, Contender, Unavailable
from metazoo.perf.shapes import SpeedShape

__all__ = ["learner_contenders", "as_contender", "PREFIX"]

#: Contender names of learners: ``learner:<registered name>``.
PREFIX = "learner:"


class _KeepGradients:
    """An optimizer stand-in for ``outer_step``: the update is left in ``.grad``, not applied."""

    def zero_grad(self, set_to_none: bool = True) -> None:
        pass

    def step(self) -> None:
        pass


def _accumulate(learner: nn.Module, batch: EpisodeBatch, optimizer) -> None:
    """Put the learner's meta-gradient (Reptile: its outer update) for ``batch`` into ``.grad``."""
    if has_outer_step(learner):
        learner.outer_step(batch, optimizer)
    elif has_meta_backward(learner):
        learner.meta_backward(batch)
    else:
        learner.meta_loss(batch)[0].backward()


def _gradients(learner: nn.Module, batch: EpisodeBatch) -> list[Tensor]:
    """The meta-gradient of ``batch`` (Reptile: the parameter change of its outer step), with the
    learner's weights, buffers and counters left as they were and a fixed seed for its sampling."""
    params = [(n, p) for n, p in learner.named_parameters() if p.requires_grad]
    state = copy.deepcopy(learner.state_dict())
    learner.zero_grad(set_to_none=True)
    learner.train()
    devices = [batch.query_x.device] if batch.query_x.device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(0)
        _accumulate(learner, batch, _KeepGradients())
    grads = [
        (state[n] - p.detach()) if p.grad is None else p.grad.detach().clone() for n, p in params
    ]
    learner.load_state_dict(state)
    learner.zero_grad(set_to_none=True)
    return grads


def _build(name: str, shape: SpeedShape, device: torch.device) -> nn.Module:
    from metazoo.build import build_learner, config_fields

    inner = {
        "inner_lr": shape.inner_lr,
        "inner_steps": shape.inner_steps,
        "test_inner_steps": shape.test_inner_steps,
    }
    config = {k: v for k, v in inner.items() if k in config_fields(name)}
    if "num_classes" in config_fields(name):
        raise Unavailable(
            f"{name} pre-trains on the split's dataset-wide class ids, which synthetic episodes "
            "do not have: time it with `metazoo train` on the benchmark"
        )
    try:
        return build_learner(name, shape.name, seed=0, device=device, **config)
    except (ValueError, KeyError, TypeError) as exc:  # e.g. a regression-only learner
        raise Unavailable(f"{name} does not run on {shape.name}: {exc}") from exc


def as_contender(
    name: str,
    description: str,
    learner: nn.Module,
    shape: SpeedShape,
    note: str = "",
    reference: Callable[[EpisodeBatch], list[Tensor]] | None = None,
) -> Contender:
    """``learner`` stepped as the trainer steps it (then Adam) and scored as the harness does."""
    optimizer = torch.optim.Adam(
        [p for p in learner.parameters() if p.requires_grad], lr=shape.outer_lr
    )

    def train_step(batch: EpisodeBatch) -> None:
        learner.train()
        optimizer.zero_grad(set_to_none=True)
        _accumulate(learner, batch, optimizer)
        if not has_outer_step(learner):  # outer_step applies its own update
            optimizer.step()

    def evaluate(batch: EpisodeBatch) -> Tensor:
        learner.eval()
        return torch.tensor(score_block(learner, list(batch)))

    return Contender(
        name,
        description,
        train_step,
        lambda batch: _gradients(learner, batch),
        evaluate,
        note=note,
        details={"config": {k: str(v) for k, v in vars(learner.config).items()}},
        model=learner,
        reference=reference,
    )


def learner_contender(name: str) -> Builder:
    """The builder of contender ``learner:<name>`` (the shape's model is not used)."""

    def build(model: nn.Module, shape: SpeedShape, example: EpisodeBatch) -> Contender:
        learner = _build(name, shape, next(model.parameters()).device)
        twin = copy.deepcopy(learner).double()
        return as_contender(
            f"{PREFIX}{name}",
            f"registered learner {name!r} as the trainer and the harness call it",
            learner,
            shape,
            note="meta-gradient checked against the same learner in float64",
            reference=lambda batch: _gradients(twin, batch.float_as(torch.float64)),
        )

    return build


def learner_contenders(names: list[str]) -> dict[str, Builder]:
    """``learner:<name>`` builders for ``names`` (``["all"]``: every registered learner)."""
    from metazoo import list_learners

    known = list_learners()
    chosen = known if names == ["all"] else names
    unknown = [n for n in chosen if n not in known]
    if unknown:
        raise KeyError(f"unknown learner(s) {unknown}; registered: {', '.join(known)}")
    return {f"{PREFIX}{n}": learner_contender(n) for n in chosen}
