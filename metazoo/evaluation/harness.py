"""The evaluation harness: every learner on the same fixed, seeded test episodes.

Episode ``i`` of ``(benchmark, split, seed)`` is the same tensor for every learner, every run and
every machine (the sampler seeds each episode from its index), so two results on the same
``(benchmark, split, seed, episodes)`` can be compared episode by episode (:func:`compare`).
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

from metazoo import distributed as dist
from metazoo._atomic import json_safe
from metazoo.engine.measured import choices_made, choices_mark
from metazoo.engine.threads import threads_for_run
from metazoo.episode import Episode, collate
from metazoo.evaluation.episodes import combine_digests, episode_digest, sampler_options
from metazoo.evaluation.provenance import MemoryMeter, environment
from metazoo.evaluation.stats import mean_ci95
from metazoo.learner import EpisodeScorer, adaptation_grad_mode, eval_settings
from metazoo.metrics import episode_score

__all__ = [
    "EvalResult",
    "evaluate",
    "open_sampler",
    "benchmark_name",
    "learner_name",
    "config_dict",
    "score_episode",
    "score_block",
    "EVAL_BLOCK",
]

#: Episodes a learner with ``score_episodes`` scores in one call during evaluation.
EVAL_BLOCK = 32


@dataclass
class EvalResult:
    """Per-episode scores of one learner on fixed episodes, with their summary and provenance.

    Attributes:
        learner: registered name of the learner (or its class name).
        benchmark: benchmark name.
        split: dataset split the episodes came from (``test`` unless told otherwise).
        seed: the sampler seed; with ``episode_ids`` it fixes the episodes.
        metric: ``accuracy`` (in %, higher is better) or ``mse`` (lower is better).
        scores: one score per episode, in the order of ``episode_ids``.
        episode_ids: the sampler indices of the episodes.
        mean: mean of ``scores``.
        ci95: ``1.96 * std / sqrt(n)``, NaN for a single episode.
        std: sample standard deviation of ``scores`` (ddof=1).
        tasks_per_s: episodes per second of ``adapt`` + ``predict`` (sampling excluded).
        seconds: wall time of the whole evaluation, sampling included.
        peak_memory_mb: MiB at the run's peak: CUDA's max allocated, or on the CPU the process's
            peak resident set during the run; ``provenance["memory"]`` says which, with the
            figure at the start (:class:`~metazoo.evaluation.provenance.MemoryMeter`).
        protocol: episodes, ways, shots, queries, the learner's declared test-time inner steps
            and BatchNorm policy (:func:`metazoo.learner.eval_settings`), precision;
            ``sampler`` (every sampler and dataset option, see
            :func:`~metazoo.evaluation.episodes.sampler_options`) and ``episodes_digest`` (a hash
            of the episodes' contents): :func:`compare` pairs only results on which they agree.
        provenance: versions, git commit, device, precision mode, seed, learner name and config.
    """

    learner: str
    benchmark: str
    split: str
    seed: int
    metric: str
    scores: list[float]
    episode_ids: list[int]
    mean: float
    ci95: float
    std: float
    tasks_per_s: float
    seconds: float
    peak_memory_mb: float
    protocol: dict[str, Any] = field(default_factory=dict)
    provenance: dict[str, Any] = field(default_factory=dict)

    @property
    def higher_is_better(self) -> bool:
        """True for accuracy, False for MSE."""
        return self.metric != "mse"

    @property
    def n(self) -> int:
        """Number of episodes."""
        return len(self.scores)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-safe dict (NaN becomes None); :meth:`from_dict` inverts it."""
        data = dataclasses.asdict(self)
        for key in ("mean", "ci95", "std"):
            if isinstance(data[key], float) and math.isnan(data[key]):
                data[key] = None
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> EvalResult:
        """Rebuild a result written by :meth:`to_dict`."""
        values = {f.name: data[f.name] for f in dataclasses.fields(cls) if f.name in data}
        for key in ("mean", "ci95", "std"):
            if values.get(key) is None:
                values[key] = math.nan
        return cls(**values)

    def __str__(self) -> str:
        unit = "%" if self.metric == "accuracy" else ""
        return (
            f"{self.learner} on {self.benchmark} ({self.split}, {self.n} episodes, seed {self.seed}): "
            f"{self.metric} {self.mean:.2f}{unit} ± {self.ci95:.2f}"
        )


def benchmark_name(benchmark: Any) -> str:
    """The name of a benchmark given by name or as an object with a ``name``."""
    return benchmark if isinstance(benchmark, str) else str(getattr(benchmark, "name", benchmark))


def open_sampler(benchmark: Any, split: str, seed: int, **overrides: Any) -> Any:
    """The episode sampler of ``benchmark``'s ``split``.

    Args:
        benchmark: a benchmark name (``metazoo.make_sampler`` builds the sampler), or an object with
            ``sampler(split, seed, **overrides)`` (a custom benchmark, e.g. for tests).
    """
    if isinstance(benchmark, str):
        from metazoo.data import make_sampler

        return make_sampler(benchmark, split=split, seed=seed, **overrides)
    if not callable(getattr(benchmark, "sampler", None)):
        raise TypeError(
            f"benchmark must be a name (see metazoo.list_benchmarks()) or an object with "
            f"sampler(split, seed, **overrides); got {type(benchmark).__name__}"
        )
    return benchmark.sampler(split, seed, **overrides)


def learner_name(learner: nn.Module) -> str:
    """The registered name of ``learner``, or its class name."""
    return getattr(learner, "registered_name", type(learner).__name__)


def config_dict(learner: nn.Module) -> dict[str, Any]:
    """The learner's config as a JSON-safe dict (empty when it has none)."""
    config = getattr(learner, "config", None)
    if config is None:
        return {}
    raw = dataclasses.asdict(config) if dataclasses.is_dataclass(config) else vars(config)
    return json_safe(raw)


def score_episode(prediction: Tensor, query_y: Tensor) -> float:
    """Accuracy in % of ``(N*Q, N)`` logits against ``(N*Q,)`` labels, or MSE of regression outputs."""
    return float(episode_score(prediction, query_y))


def _protocol(episode: Episode, learner: nn.Module, episodes: int) -> dict:
    n_support, n_query = episode.support_x.shape[0], episode.query_x.shape[0]
    ways = None if episode.is_regression else episode.ways
    param = next(learner.parameters(), None)
    declared = eval_settings(learner)  # the learner's own test-time settings
    return {
        "episodes": episodes,
        "ways": ways,
        "shots": n_support // ways if ways else n_support,
        "queries": n_query // ways if ways else n_query,
        "inner_steps": declared.inner_steps,
        "bn_policy": declared.bn_policy,
        "dtype": str(param.dtype).replace("torch.", "") if param is not None else None,
        # TF32 exists only on CUDA; on other devices the flags change nothing
        "tf32": param is not None
        and param.device.type == "cuda"
        and bool(torch.backends.cuda.matmul.allow_tf32 or torch.backends.cudnn.allow_tf32),
    }


def _resolve_device(learner: nn.Module, device: torch.device | str | None) -> torch.device:
    if device is not None:
        device = torch.device(device)
        learner.to(device)
        return device
    param = next(learner.parameters(), None)
    return param.device if param is not None else torch.device("cpu")


def _run_episode(learner: nn.Module, episode: Episode) -> float:
    # The harness, not the learner, sets grad mode: gradient steps need autograd (and build no
    # graph to the parameters in eval mode), forward-pass adaptation runs without it.
    with adaptation_grad_mode(learner):
        state = learner.adapt(episode.support_x, episode.support_y, episode.ways)
    with torch.no_grad():
        prediction = learner.predict(state, episode.query_x)
    score = score_episode(prediction, episode.query_y)
    del state, prediction  # free the episode's tensors before the next one
    return score


def score_block(learner: nn.Module, episodes: list[Episode]) -> list[float]:
    """Scores of episodes as :func:`evaluate` computes them: one ``score_episodes`` call where
    the learner has it, else ``adapt`` then ``predict`` per episode (learner in eval mode)."""
    if not isinstance(learner, EpisodeScorer):
        return [_run_episode(learner, e) for e in episodes]
    with torch.no_grad():  # the learner switches autograd on where its adaptation needs it
        return learner.score_episodes(collate(episodes)).tolist()


def evaluate(
    learner: nn.Module,
    benchmark: Any,
    episodes: int = 600,
    seed: int = 0,
    device: torch.device | str | None = None,
    split: str = "test",
    progress: Callable[[int, int], None] | None = None,
    **sampler_overrides: Any,
) -> EvalResult:
    """Evaluate ``learner`` on episodes ``0 .. episodes-1`` of ``benchmark``'s ``split``.

    The learner is put in eval mode (its mode is restored afterwards); ``adapt`` runs under
    ``torch.enable_grad()`` when the learner adapts by gradient steps, else under
    ``torch.no_grad()`` (:func:`metazoo.learner.adaptation_grad_mode`); ``predict`` always under
    ``torch.no_grad()``. Learners with
    ``score_episodes`` (the MAML family) score blocks of :data:`EVAL_BLOCK` episodes at once (the
    same per-episode numbers; ``vmap`` over the episodes on a GPU).

    Args:
        learner: a registered learner (``adapt`` / ``predict``).
        benchmark: a benchmark name, or an object with ``sampler(split, seed, **overrides)``.
        episodes: number of test episodes (600 is the field's convention).
        seed: sampler seed; results with the same seed and episodes are paired.
        device: where to run (the learner is moved there); default: the learner's device.
        split: dataset split, ``test`` by default (the trainer validates on ``val``).
        progress: called as ``progress(done, total)`` after each episode.
        **sampler_overrides: passed to the sampler (``ways``, ``shots``, ``queries``, ...).

    Returns:
        An :class:`EvalResult` with per-episode scores, mean ± 95% CI, timing, memory, provenance.
    """
    if episodes < 1:
        raise ValueError(f"episodes must be >= 1, got {episodes}")
    device = _resolve_device(learner, device)
    threads, since = threads_for_run(), choices_mark()
    sampler = open_sampler(benchmark, split, seed, **sampler_overrides)
    was_training = learner.training
    learner.eval()
    scores, digests, busy, first = [], [], 0.0, None
    start = time.perf_counter()
    block = EVAL_BLOCK if isinstance(learner, EpisodeScorer) else 1
    try:
        with MemoryMeter(device) as memory:
            indices = list(dist.episode_range(episodes))  # this rank's block (all, alone)
            for start_at in range(0, len(indices), block):
                chunk = [
                    sampler.episode(i).to(device) for i in indices[start_at : start_at + block]
                ]
                first = first or chunk[0]
                digests += [episode_digest(e) for e in chunk]
                tick = time.perf_counter()
                scores += score_block(learner, chunk)
                if device.type == "cuda":
                    torch.cuda.synchronize(device)
                busy += time.perf_counter() - tick
                if progress is not None:
                    progress(indices[start_at + len(chunk) - 1] + 1, episodes)
    finally:
        learner.train(was_training)
    scores = dist.gather_scores(scores, episodes)  # every rank's scores, in episode order
    result = _result(learner, benchmark, split, seed, scores, first, busy, start, memory, device)
    result.protocol.update(
        sampler=sampler_options(sampler), episodes_digest=_gathered(digests, episodes)
    )
    result.provenance.update(  # how it ran (executor='auto''s measured choices), not what
        threads=threads.to_dict(), executors=[c.to_dict() for c in choices_made(since)]
    )
    return result


def _gathered(digests: list[int], episodes: int) -> str:
    """The combined digest of every rank's episodes (halves of 32 bits travel exactly as floats)."""
    low = dist.gather_scores([d & 0xFFFFFFFF for d in digests], episodes)
    high = dist.gather_scores([d >> 32 for d in digests], episodes)
    return combine_digests([int(h) << 32 | int(lo) for lo, h in zip(low, high)])


def _data_protocol(benchmark: Any) -> dict[str, Any]:
    """The card's cross-domain / varied-episode facts (none for a custom benchmark object)."""
    from metazoo.data.benchmarks import benchmark_protocol

    return benchmark_protocol(benchmark)


def _result(learner, benchmark, split, seed, scores, first, busy, start, memory, device):
    mean, ci95, std = mean_ci95(scores)
    name, config = learner_name(learner), config_dict(learner)
    provenance = environment(device)
    provenance.update(
        seed=seed, learner=name, config=config, benchmark=benchmark_name(benchmark), split=split
    )
    provenance["memory"] = memory.record()
    return EvalResult(
        learner=name,
        benchmark=benchmark_name(benchmark),
        split=split,
        seed=seed,
        metric="mse" if first.is_regression else "accuracy",
        scores=scores,
        episode_ids=list(range(len(scores))),
        mean=mean,
        ci95=ci95,
        std=std,
        tasks_per_s=len(scores) / busy if busy > 0 else math.inf,
        seconds=time.perf_counter() - start,
        peak_memory_mb=memory.peak_mb,
        protocol={**_protocol(first, learner, len(scores)), **_data_protocol(benchmark)},
        provenance=provenance,
    )
