"""Episodes: the support and query sets of one few-shot task, or of a meta-batch of tasks.

Support and query are never called "train" and "test": those words name dataset splits here.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import torch
from torch import Tensor

__all__ = ["Episode", "EpisodeBatch", "EpisodeList", "collate"]


def _check_pair(kind: str, x: Tensor, y: Tensor, lead: int) -> None:
    """Check that ``y`` has the ``lead`` leading dims of ``x`` and nothing else."""
    if not isinstance(x, Tensor) or not isinstance(y, Tensor):
        raise TypeError(
            f"{kind}_x and {kind}_y must be torch.Tensor, got {type(x).__name__} and {type(y).__name__}"
        )
    if x.dim() < lead + 1:
        raise ValueError(
            f"{kind}_x: expected at least {lead + 1} dims ({'T, ' if lead == 2 else ''}samples, *features), "
            f"got shape {tuple(x.shape)}"
        )
    expected = tuple(x.shape[:lead])
    matches = tuple(y.shape[:lead]) == expected and (y.is_floating_point() or y.dim() == lead)
    if not matches:
        what = f"{expected} (labels)" if not y.is_floating_point() else f"{expected} + target dims"
        raise ValueError(
            f"{kind}_y: expected shape {what} to match {kind}_x {tuple(x.shape)}, got {tuple(y.shape)}"
        )


def _check_consistent(
    support_x: Tensor, support_y: Tensor, query_x: Tensor, query_y: Tensor, lead: int
) -> None:
    if support_x.shape[lead:] != query_x.shape[lead:]:
        raise ValueError(
            f"query_x: expected per-sample shape {tuple(support_x.shape[lead:])} (as support_x), "
            f"got {tuple(query_x.shape[lead:])}"
        )
    if lead == 2 and support_x.shape[0] != query_x.shape[0]:
        raise ValueError(
            f"query_x: expected {support_x.shape[0]} tasks (as support_x), got {query_x.shape[0]}"
        )
    if support_y.is_floating_point() != query_y.is_floating_point():
        raise ValueError(
            f"support_y is {support_y.dtype} but query_y is {query_y.dtype}: use integer labels for "
            "classification or float targets for regression in both"
        )


@dataclass(frozen=True)
class _EpisodeTensors:
    """Fields, checks and moves shared by :class:`Episode` (no task dim) and :class:`EpisodeBatch`."""

    support_x: Tensor
    support_y: Tensor
    query_x: Tensor
    query_y: Tensor
    ways: int | None = None
    classes: Tensor | None = None

    #: leading dims every tensor shares: 1 (samples) for an episode, 2 (tasks, samples) for a batch.
    _lead = 1

    def __post_init__(self) -> None:
        _check_pair("support", self.support_x, self.support_y, self._lead)
        _check_pair("query", self.query_x, self.query_y, self._lead)
        _check_consistent(self.support_x, self.support_y, self.query_x, self.query_y, self._lead)
        if self.ways is None and not self.is_regression:
            object.__setattr__(self, "ways", int(self.support_y.max().item()) + 1)

    @property
    def is_regression(self) -> bool:
        """True when targets are floats (regression), False for class labels."""
        return self.support_y.is_floating_point()

    def to(self, device: torch.device | str, non_blocking: bool = False):
        """The same episode(s) with every tensor moved to ``device``."""
        return self._map(type(self), lambda t: t.to(device, non_blocking=non_blocking))

    def float_as(self, dtype: torch.dtype):
        """The same episode(s) with every floating-point tensor (inputs, regression targets) in
        ``dtype``; integer labels are left as they are (a float64 reference of an fp32 run)."""
        return self._map(type(self), lambda t: t.to(dtype) if t.is_floating_point() else t)

    def _map(self, cls: type, function):
        """``cls`` built from ``function`` applied to every tensor field (``ways`` kept)."""
        values = {f.name: getattr(self, f.name) for f in fields(self)}
        return cls(**{k: function(v) if isinstance(v, Tensor) else v for k, v in values.items()})


@dataclass(frozen=True)
class Episode(_EpisodeTensors):
    """One few-shot task.

    Attributes:
        support_x: ``(N*K, *x)`` support inputs.
        support_y: ``(N*K,)`` labels in ``0..N-1`` (int64), or ``(N*K, *y)`` float targets.
        query_x: ``(N*Q, *x)`` query inputs.
        query_y: ``(N*Q,)`` labels or float targets, as ``support_y``.
        ways: N for classification (inferred from ``support_y`` when None); None for regression.
        classes: ``(N,)`` int64 dataset-wide class index of each way (label ``j`` is class
            ``classes[j]``), set by the sampler; used by learners that pre-train on all classes.
    """

    def batch(self) -> EpisodeBatch:
        """This episode as a meta-batch of one task."""
        return self._map(EpisodeBatch, lambda t: t[None])


@dataclass(frozen=True)
class EpisodeBatch(_EpisodeTensors):
    """A meta-batch of T tasks with the same shapes.

    Attributes:
        support_x: ``(T, N*K, *x)`` support inputs.
        support_y: ``(T, N*K)`` labels in ``0..N-1`` (int64), or ``(T, N*K, *y)`` float targets.
        query_x: ``(T, N*Q, *x)`` query inputs.
        query_y: ``(T, N*Q)`` labels or ``(T, N*Q, *y)`` float targets.
        ways: N for classification (inferred from ``support_y`` when None); None for regression.
        classes: ``(T, N)`` int64 dataset-wide class index of each way, set by the sampler.
    """

    _lead = 2

    def __len__(self) -> int:
        return self.support_x.shape[0]

    def task(self, index: int) -> Episode:
        """The ``index``-th task of the batch as an :class:`Episode`."""
        return self._map(Episode, lambda t: t[index])

    def __iter__(self):
        return (self.task(i) for i in range(len(self)))

    def task_tensors(self, index: int) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """``(support_x, support_y, query_x, query_y)`` of task ``index``, without checks."""
        return (
            self.support_x[index],
            self.support_y[index],
            self.query_x[index],
            self.query_y[index],
        )

    def split(self, chunk: int) -> list[EpisodeBatch]:
        """Consecutive sub-batches of at most ``chunk`` tasks (for chunked execution)."""
        return [
            self._map(EpisodeBatch, lambda t, i=i: t[i : i + chunk])
            for i in range(0, len(self), chunk)
        ]

    @staticmethod
    def stack(episodes: list[Episode]) -> EpisodeBatch:
        """Stack same-shaped episodes along a new leading task dimension."""
        if not episodes:
            raise ValueError("EpisodeBatch.stack needs at least one episode")
        ways = {e.ways for e in episodes}
        if len(ways) > 1:
            raise ValueError(f"cannot stack episodes with different ways {sorted(ways)}")
        return EpisodeBatch(
            torch.stack([e.support_x for e in episodes]),
            torch.stack([e.support_y for e in episodes]),
            torch.stack([e.query_x for e in episodes]),
            torch.stack([e.query_y for e in episodes]),
            ways.pop(),
            None
            if any(e.classes is None for e in episodes)
            else torch.stack([e.classes for e in episodes]),
        )


@dataclass(frozen=True)
class EpisodeList:
    """A meta-batch of T tasks of different sizes (ways, shots or queries), one :class:`Episode`
    each: Meta-Dataset's episodes. Executors run the tasks that share shapes together
    (:meth:`groups`) and the rest one by one.

    Attributes:
        episodes: the T tasks, in order; each ``support_x (n_t, *x)``, ``query_x (m_t, *x)``.
    """

    episodes: tuple[Episode, ...]

    def __post_init__(self) -> None:
        if not self.episodes:
            raise ValueError("EpisodeList needs at least one episode")
        kinds = {e.is_regression for e in self.episodes}
        if len(kinds) > 1:
            raise ValueError(
                "EpisodeList mixes classification and regression episodes; keep one kind per batch"
            )
        object.__setattr__(self, "episodes", tuple(self.episodes))

    def __len__(self) -> int:
        return len(self.episodes)

    def __iter__(self):
        return iter(self.episodes)

    def task(self, index: int) -> Episode:
        """The ``index``-th task."""
        return self.episodes[index]

    @property
    def is_regression(self) -> bool:
        """True when targets are floats (regression), False for class labels."""
        return self.episodes[0].is_regression

    @property
    def ways(self) -> int | None:
        """The largest N of the tasks (the width a padded classifier head needs)."""
        return None if self.is_regression else max(e.ways for e in self.episodes)

    @property
    def device(self) -> torch.device:
        """Where the tensors are."""
        return self.episodes[0].support_x.device

    def to(self, device: torch.device | str, non_blocking: bool = False) -> EpisodeList:
        """The same tasks with every tensor moved to ``device``."""
        return EpisodeList(tuple(e.to(device, non_blocking) for e in self.episodes))

    def float_as(self, dtype: torch.dtype) -> EpisodeList:
        """The same tasks with every floating-point tensor in ``dtype``."""
        return EpisodeList(tuple(e.float_as(dtype) for e in self.episodes))

    def split(self, chunk: int) -> list[EpisodeList]:
        """Consecutive sub-lists of at most ``chunk`` tasks."""
        return [EpisodeList(self.episodes[i : i + chunk]) for i in range(0, len(self), chunk)]

    def groups(self) -> list[tuple[list[int], EpisodeBatch]]:
        """The tasks with equal ways and support/query shapes, stacked: ``(task indices, batch)``
        per group, groups in order of their first task."""
        by_shape: dict[tuple, list[int]] = {}
        for index, e in enumerate(self.episodes):
            key = (e.ways, tuple(e.support_x.shape), tuple(e.query_x.shape))
            by_shape.setdefault(key, []).append(index)
        return [
            (indices, EpisodeBatch.stack([self.episodes[i] for i in indices]))
            for indices in by_shape.values()
        ]


def collate(episodes: list[Episode]) -> EpisodeBatch | EpisodeList:
    """Same-shaped episodes stacked into an :class:`EpisodeBatch`; otherwise an
    :class:`EpisodeList`."""
    first = episodes[0] if episodes else None
    same = first is not None and all(
        e.ways == first.ways
        and e.support_x.shape == first.support_x.shape
        and e.query_x.shape == first.query_x.shape
        for e in episodes
    )
    return EpisodeBatch.stack(episodes) if same else EpisodeList(tuple(episodes))
