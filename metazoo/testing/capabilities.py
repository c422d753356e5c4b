"""Contract checks of the optional capabilities a learner declares (:mod:`metazoo.learner`).

:func:`check_capabilities` runs, for each capability protocol the learner satisfies (found with
``isinstance``, as the trainer and the harness find it), the calls they will make:

* :class:`~metazoo.learner.GradientLearner`: its config names an executor, its inner loops are
  the engine's, ``meta_params`` maps the learner's own tensors, ``step_weights`` fits the inner
  steps, and one step of the engine's training step (``FastMetaStep``, as the trainer takes it)
  reports the loss ``meta_loss(batch, 0)`` gives and moves the weights;
* :class:`~metazoo.learner.EpisodeScorer`: ``score_episodes`` gives the harness's per-episode
  scores of ``adapt`` then ``predict``;
* :class:`~metazoo.learner.EvalSettingsLearner`: the settings are well formed and, for a
  gradient learner, those of its test-time inner loop.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable

import torch
from torch import nn

from metazoo import engine
from metazoo.engine.fast import FastMetaStep, FastOptions
from metazoo.episode import EpisodeBatch
from metazoo.learner import (
    EpisodeScorer,
    EvalSettings,
    EvalSettingsLearner,
    GradientConfig,
    GradientLearner,
    adaptation_grad_mode,
)
from metazoo.metrics import episode_score

__all__ = ["check_capabilities"]

Require = Callable[[bool, str], None]


def check_capabilities(name: str, learner: nn.Module, batch: EpisodeBatch, require: Require):
    """Check each capability ``learner`` declares, on copies of it; ``require(ok, message)``
    raises the contract's error. (An :class:`~metazoo.learner.OuterStepLearner`'s ``outer_step``
    is checked where :func:`~metazoo.testing.check_learner` checks the meta-update.)"""
    if isinstance(learner, GradientLearner):
        _check_gradient_learner(name, copy.deepcopy(learner), batch, require)
    if isinstance(learner, EpisodeScorer):
        _check_episode_scores(name, copy.deepcopy(learner), batch, require)
    if isinstance(learner, EvalSettingsLearner):
        _check_eval_settings(name, learner, require)


def _check_gradient_learner(name: str, learner, batch: EpisodeBatch, require: Require) -> None:
    config = learner.config
    require(
        isinstance(config, GradientConfig) and config.executor in engine.EXECUTORS,
        f"{name}: a GradientLearner's config names the executor and chunk size the trainer "
        f"uses (executor one of {engine.EXECUTORS}, chunk_size an int or None)",
    )
    task = "regression" if batch.is_regression else "classification"
    for training in (True, False):
        loop = learner.inner_loop(training)
        require(
            isinstance(loop, engine.InnerLoop) and loop.task == task,
            f"{name}: inner_loop({training}) must return a metazoo.engine.InnerLoop for {task}, "
            f"got {loop!r}",
        )
    own = learner.meta_params()
    passed = learner.meta_params(dict(learner.named_parameters()))
    require(
        isinstance(own, engine.MetaParams)
        and list(own.weights) == [n for n, _ in learner.model.named_parameters()]
        and all(passed.weights[n] is w for n, w in own.weights.items()),
        f"{name}: meta_params() must return a metazoo.engine.MetaParams whose weights are the "
        "model's parameters, by name, and meta_params(tensors) the given tensors",
    )
    _check_step_weights(name, learner, require)
    _check_fast_step(name, learner, batch, require)


def _check_step_weights(name: str, learner, require: Require) -> None:
    steps = learner.inner_loop(True, 0).steps
    for step in (0, None):
        weights = learner.step_weights(step)
        require(
            weights is None or tuple(weights.shape) == (steps,),
            f"{name}: step_weights({step}) must be None or a ({steps},) tensor, one weight per "
            f"inner step, got {weights!r}",
        )


def _check_fast_step(name: str, learner, batch: EpisodeBatch, require: Require) -> None:
    """One step of the engine's training step reports ``meta_loss(batch, 0)``'s loss."""
    learner.train()
    expected = float(learner.meta_loss(batch, 0)[0].detach())
    before = [p.detach().clone() for p in learner.parameters()]
    optimizer = torch.optim.SGD(learner.parameters(), lr=0.1)
    options = FastOptions(executor="sequential", cuda_graph=False)
    loss = float(FastMetaStep(learner, optimizer, batch, options)(batch, 0))
    require(
        math.isclose(loss, expected, rel_tol=1e-5, abs_tol=1e-6),
        f"{name}: the engine's training step (FastMetaStep) computed loss {loss!r} from "
        f"inner_loop, meta_params and step_weights, but meta_loss(batch, 0) gives {expected!r}; "
        "meta_loss must be the engine's objective of those members",
    )
    moved = any(not torch.equal(b, p) for b, p in zip(before, learner.parameters()))
    require(moved, f"{name}: a step of the engine's training step moved no parameter")


def _check_episode_scores(name: str, learner, batch: EpisodeBatch, require: Require) -> None:
    learner.eval()
    with torch.no_grad():
        scores = learner.score_episodes(batch).tolist()
    expected = []
    for episode in batch:
        with adaptation_grad_mode(learner):
            state = learner.adapt(episode.support_x, episode.support_y, episode.ways)
        with torch.no_grad():
            prediction = learner.predict(state, episode.query_x)
        expected.append(float(episode_score(prediction, episode.query_y)))
    require(
        len(scores) == len(expected)
        and all(math.isclose(a, b, rel_tol=1e-4, abs_tol=1e-4) for a, b in zip(scores, expected)),
        f"{name}: score_episodes gave {scores}, but adapt then predict score the episodes "
        f"{expected} (as the harness computes them); score_episodes must give the same numbers",
    )


def _check_eval_settings(name: str, learner, require: Require) -> None:
    settings = learner.eval_settings()
    require(
        isinstance(settings, EvalSettings)
        and (settings.inner_steps is None or settings.inner_steps >= 0)
        and (settings.bn_policy is None or settings.bn_policy in engine.BN_POLICIES),
        f"{name}: eval_settings() must return a metazoo.learner.EvalSettings (inner_steps None "
        f"or >= 0, bn_policy None or one of {engine.BN_POLICIES}), got {settings!r}",
    )
    if isinstance(learner, GradientLearner):
        loop = learner.inner_loop(False)
        declared = (settings.inner_steps, settings.bn_policy)
        require(
            declared == (loop.steps, loop.bn_policy),
            f"{name}: eval_settings() declares {declared} but the test-time inner loop takes "
            f"{(loop.steps, loop.bn_policy)} (steps, bn_policy)",
        )
