"""A synthetic benchmark and a tiny learner that need no data: for tests and smoke runs.

``SyntheticBenchmark`` draws Gaussian-cluster classification tasks (only the first ``signal``
features carry the class, the rest is noise a learned embedding can suppress) or linear-regression
tasks, each episode seeded from ``(seed, split, index)`` like the real sampler. ``TinyLearner`` is a
prototype classifier on a learned embedding, or one-step MAML for regression (through the engine's
``adapt`` / ``predict``, not a copy of the inner loop): small enough to train in a second, real
enough to exercise every code path of the harness and the trainer.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

from metazoo import engine
from metazoo._registry import register_learner, unregister_learner
from metazoo.episode import Episode, EpisodeBatch
from metazoo.learner import EvalSettings
from metazoo.learners.episodic import class_means, episodic_loss

__all__ = ["SyntheticBenchmark", "SyntheticSampler", "TinyLearner", "registered"]

_SPLITS = {"train": 0, "val": 1, "test": 2}


@dataclass(frozen=True)
class SyntheticBenchmark:
    """A benchmark object accepted wherever a benchmark name is (``evaluate``, ``train``).

    Attributes:
        name: the name recorded in results.
        task: ``classification`` or ``regression``.
        ways: classes per task (classification).
        shots: support samples per class (per task for regression).
        queries: query samples per class (per task for regression).
        features: input width.
        signal: how many leading features carry the class.
        poisoned: episode indices whose inputs are NaN (to test divergence handling).
    """

    name: str = "synthetic"
    task: str = "classification"
    ways: int = 3
    shots: int = 2
    queries: int = 4
    features: int = 8
    signal: int = 2
    poisoned: frozenset[int] = field(default_factory=frozenset)
    meta_batch: int = 4

    def sampler(self, split: str, seed: int, **overrides) -> SyntheticSampler:
        """The sampler of ``split`` (``train``, ``val`` or ``test``)."""
        return SyntheticSampler(self, split, seed, **overrides)


class SyntheticSampler:
    """Episodes of a :class:`SyntheticBenchmark`; the same index always gives the same episode."""

    def __init__(self, bench: SyntheticBenchmark, split: str, seed: int, **overrides):
        self.bench = bench
        self.split = split
        self.seed = seed
        self.ways = overrides.pop("ways", bench.ways)
        self.shots = overrides.pop("shots", bench.shots)
        self.queries = overrides.pop("queries", bench.queries)
        overrides.pop("device", None)
        if overrides:
            raise TypeError(f"unknown sampler overrides {sorted(overrides)}")
        self.num_classes = self.ways

    def options(self) -> dict:
        """Every option that decides the episodes (recorded in evaluation results)."""
        b = self.bench
        return {
            "benchmark": b.name, "split": self.split, "seed": self.seed, "task": b.task,
            "ways": self.ways, "shots": self.shots, "queries": self.queries,
            "features": b.features, "signal": b.signal,
        }  # fmt: skip

    def episode(self, index: int) -> Episode:
        g = torch.Generator().manual_seed(
            self.seed * 1_000_003 + _SPLITS[self.split] * 7919 + index
        )
        b = self.bench
        if b.task == "regression":
            slope, bias = torch.randn(2, generator=g)
            x = torch.rand(self.shots + self.queries, 1, generator=g) * 4 - 2
            y = slope * x + bias
            ep = Episode(x[: self.shots], y[: self.shots], x[self.shots :], y[self.shots :])
        else:
            means = torch.zeros(self.ways, b.features)
            means[:, : b.signal] = torch.randn(self.ways, b.signal, generator=g) * 2

            def draw(per_class: int) -> tuple[Tensor, Tensor]:
                labels = torch.arange(self.ways).repeat_interleave(per_class)
                noise = torch.randn(len(labels), b.features, generator=g)
                noise[:, b.signal :] *= 3.0
                return means[labels] + noise, labels

            sx, sy = draw(self.shots)
            qx, qy = draw(self.queries)
            ep = Episode(sx, sy, qx, qy, self.ways, torch.arange(self.ways))
        if index in b.poisoned and self.split == "train":
            ep = Episode(
                ep.support_x * torch.nan,
                *[getattr(ep, k) for k in ("support_y", "query_x", "query_y", "ways", "classes")],
            )
        return ep

    def batch(self, index: int, meta_batch: int) -> EpisodeBatch:
        start = index * meta_batch
        return self.episodes(range(start, start + meta_batch))

    def episodes(self, indices) -> EpisodeBatch:
        return EpisodeBatch.stack([self.episode(i) for i in indices])


class TinyLearner(nn.Module):
    """Prototypes on a learned embedding (classification) or one-step MAML (regression)."""

    @dataclass
    class Config:
        """Config of :class:`TinyLearner`."""

        #: inner-loop step size (regression).
        inner_lr: float = 0.1
        #: inner gradient steps at meta-training time (regression).
        inner_steps: int = 1
        #: inner gradient steps at test time, in eval mode (regression).
        test_inner_steps: int = 2

    model_kind = "classifier"
    tasks = ("classification", "regression")
    adapts_by_gradient = True  # regression adapts by gradient steps

    def __init__(self, model: nn.Module, config: TinyLearner.Config):
        super().__init__()
        self.model = model
        self.config = config

    def eval_settings(self) -> EvalSettings:
        """The test-time inner steps (of regression; classification takes none)."""
        return EvalSettings(inner_steps=self.config.test_inner_steps)

    def adapt(self, support_x: Tensor, support_y: Tensor, ways: int | None):
        """Prototypes ``(N, D)`` of the N ``ways``, or fast weights of ``model`` after the engine's
        inner SGD steps (second order in training mode; detached, with no graph to the parameters,
        in eval mode)."""
        if not support_y.is_floating_point():
            prototypes = class_means(self.model(support_x), support_y, ways)
            return prototypes if self.training else prototypes.detach()
        steps = self.config.inner_steps if self.training else self.config.test_inner_steps
        loop = engine.InnerLoop(steps=steps, task="regression")
        meta = engine.MetaParams(engine.parameters_of(self.model), self.config.inner_lr)
        outer = self.training and torch.is_grad_enabled()
        return engine.adapt(self.model, support_x, support_y, loop, meta, outer=outer, ways=None)

    def predict(self, state, query_x: Tensor) -> Tensor:
        """``(N*Q, N)`` negative squared distances, or ``(N*Q, 1)`` regression outputs."""
        if isinstance(state, dict):
            return engine.predict(self.model, state, query_x)
        return -(torch.cdist(self.model(query_x), state) ** 2)

    def meta_loss(
        self, batch: EpisodeBatch, step: int | None = None
    ) -> tuple[Tensor, dict[str, float]]:
        """Mean query cross-entropy (or MSE) over tasks, and accuracy in % (or MSE)."""
        loss = nn.functional.mse_loss if batch.is_regression else nn.functional.cross_entropy
        return episodic_loss(self, batch, loss)


@contextmanager
def registered(cls: type = TinyLearner, family: str = "optimization", **defaults) -> Iterator[str]:
    """Register ``cls`` under a fresh unique name for the block, then remove it again.

    Keeps test learners out of other tests' ``list_learners()``.
    """
    name = f"test-{cls.__name__.lower()}-{uuid.uuid4().hex[:8]}"
    register_learner(name, family=family, **defaults)(cls)
    try:
        yield name
    finally:
        unregister_learner(name)
