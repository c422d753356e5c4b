"""Every registered learner as a speed-lab contender: ``learner:<name>``.

A learner contender is what a researcher runs: the learner ``build_learner`` makes for the shape's
benchmark card (its backbone, its config; the MAML family takes the shape's inner loop), stepped as
the trainer steps it (``outer_step``, the engine's MAML-family step or
``meta_loss(...).backward()``, then Adam) and scored as the evaluation harness scores it
(``score_episodes`` or ``adapt`` then ``predict``). Each learner has its own objective, so its meta-gradient is checked against the
same learner in float64 on the same batch, not against MAML's.

    python -m lab.speed --learners all             # every learner, every shape
    python -m lab.speed --learners protonet maml   # some of them

How one learner is stepped, scored and checked is :mod:`metazoo.bench.speed`'s (what a user's
``metazoo speed LEARNER BENCHMARK`` runs); this module only races it on the lab's shapes.
"""

from __future__ import annotations

import copy
from collections.abc import Callable

import torch
from torch import Tensor, nn

import metazoo
from lab.speed.contender import Builder, Contender, Unavailable
from lab.speed.shapes import SpeedShape
from metazoo.bench.speed import meta_gradient, training_step
from metazoo.build import config_fields
from metazoo.episode import EpisodeBatch
from metazoo.evaluation.harness import score_block

__all__ = ["learner_contenders", "as_contender", "PREFIX"]

#: Contender names of learners: ``learner:<registered name>``.
PREFIX = "learner:"


def _build(name: str, shape: SpeedShape, device: torch.device) -> nn.Module:
    inner = {
        "inner_lr": shape.inner_lr,
        "inner_steps": shape.inner_steps,
        "test_inner_steps": shape.test_inner_steps,
    }
    config = {k: v for k, v in inner.items() if k in config_fields(name)}
    if "num_classes" in config_fields(name):
        raise Unavailable(
            f"{name} pre-trains on the split's dataset-wide class ids, which the lab's episodes "
            f"do not have: `metazoo speed {name} {shape.name}` times it on episodes that do"
        )
    try:
        return metazoo.build_learner(name, shape.name, seed=0, device=device, **config)
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
        training_step(learner, optimizer, batch)

    def evaluate(batch: EpisodeBatch) -> Tensor:
        learner.eval()
        return torch.tensor(score_block(learner, list(batch)))

    return Contender(
        name,
        description,
        train_step,
        lambda batch: meta_gradient(learner, batch),
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
            reference=lambda batch: meta_gradient(twin, batch.float_as(torch.float64)),
        )

    return build


def learner_contenders(names: list[str]) -> dict[str, Builder]:
    """``learner:<name>`` builders for ``names`` (``["all"]``: every registered learner)."""
    known = metazoo.list_learners()
    chosen = known if names == ["all"] else names
    unknown = [n for n in chosen if n not in known]
    if unknown:
        raise KeyError(f"unknown learner(s) {unknown}; registered: {', '.join(known)}")
    return {f"{PREFIX}{n}": learner_contender(n) for n in chosen}
