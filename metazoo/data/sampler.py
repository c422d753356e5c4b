"""The one episodic task sampler: N-way, K-shot, Q-query episodes from any class-indexed dataset.

Determinism: episode ``i`` draws every random number from its own ``torch.Generator`` seeded with a
hash of ``(benchmark, split, seed, i)`` (:mod:`metazoo.data.seeding`). The same episode comes out
whatever the batch it is drawn in, the number of DataLoader workers, or the machine.

Speed: a split lives in memory (or on the GPU) as one tensor; a meta-batch is drawn as index tensors
(one small loop over tasks, for the per-episode generators) and the images are fetched with a single
index gather, rotated with four masked ``rot90`` calls and scaled to float once.

Layout of an episode: support images are class-major (``K`` images of label 0, then label 1, ...),
queries likewise (``Q`` per class). Label ``j`` is dataset class ``classes[j]``; the classes are drawn
in random order, so labels are a random assignment.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from metazoo.data.augment import make_augment
from metazoo.data.dag import draw_dag_classes
from metazoo.data.dataset import ClassDataset
from metazoo.data.draws import choose_by_keys, choose_images, episode_uniforms, first_distinct
from metazoo.data.seeding import generator_for
from metazoo.data.varied import VariedShape, draw_shots, draw_ways
from metazoo.episode import Episode, EpisodeBatch, EpisodeList

__all__ = ["SamplerConfig", "EpisodeSampler", "MODES", "HIERARCHIES"]

MODES = ("train-val", "train-train")
HIERARCHIES = ("uniform", "within", "dag")


@dataclass
class SamplerConfig:
    """How episodes are drawn."""

    #: N, classes per task.
    ways: int
    #: K, support images per class.
    shots: int
    #: Q, query images per class (ignored in ``train-train`` mode, where the query set is the support set).
    queries: int
    #: ``"train-val"``: queries disjoint from the support set; ``"train-train"``: query set = support set.
    mode: str = "train-val"
    #: ``"uniform"``: classes uniform over the split; ``"within"``: all N classes of a task from one superclass;
    #: ``"dag"`` (varied episodes): the classes of one of the dataset's ``class_groups`` (ImageNet DAG).
    hierarchy: str = "uniform"
    #: The tasks of one ``batch(i, m)`` come from different superclasses (each task within one); see
    #: :meth:`EpisodeSampler.batch`.
    meta_batch_diversity: bool = False
    #: Rotations by 90/180/270 degrees as new classes (4x classes).
    rotations: bool = False
    #: Support-set augmentation: None, ``"flip"``, ``"shift"``, ``"flip-shift"`` or a callable
    #: ``(support_x (N*K, C, H, W) float, generator) -> same shape``.
    augment: str | Callable[[Tensor, torch.Generator], Tensor] | None = None
    #: Allow classes with fewer than K+Q images (their images are repeated); an error otherwise.
    replacement: bool = False
    #: Where the split's images live and episodes are returned (``"cpu"``, ``"cuda"``).
    device: str | torch.device = "cpu"
    #: Meta-Dataset's episodes of varying ways and shots (:mod:`metazoo.data.varied`): ``ways``
    #: is then the most classes per episode, ``queries`` the most queries per class, ``shots``
    #: unused; batches are :class:`~metazoo.episode.EpisodeList`.
    varied: bool = False
    #: With ``varied``: the fewest classes per episode.
    min_ways: int = 5

    def validate(self) -> None:
        """Raise ``ValueError`` naming the bad field."""
        for field in ("ways", "shots"):
            if int(getattr(self, field)) < 1:
                raise ValueError(f"{field} must be >= 1, got {getattr(self, field)}")
        if self.queries < 0:
            raise ValueError(f"queries must be >= 0, got {self.queries}")
        if self.mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {self.mode!r}")
        if self.hierarchy not in HIERARCHIES:
            raise ValueError(f"hierarchy must be one of {HIERARCHIES}, got {self.hierarchy!r}")
        if self.hierarchy == "dag" and not self.varied:
            raise ValueError("hierarchy='dag' draws varied episodes; add varied=True")
        if self.varied:
            self.varied_shape().validate()
            if self.augment is not None or self.meta_batch_diversity:
                raise ValueError(
                    "varied episodes take neither `augment` nor `meta_batch_diversity`; "
                    "turn those off or use fixed-size episodes (varied=False)"
                )

    def varied_shape(self) -> VariedShape:
        """The bounds of the varied-episode distribution this config gives."""
        return VariedShape(min_ways=self.min_ways, max_ways=self.ways, max_queries=self.queries)

    @property
    def fewest_ways(self) -> int:
        """The fewest classes an episode can have (``ways``, or ``min_ways`` when varied)."""
        return self.min_ways if self.varied else self.ways


class EpisodeSampler:
    """Draws the episodes of one split of one benchmark.

    Args:
        dataset: the split's classes and images.
        config: ways, shots, queries and options.
        benchmark: the benchmark name, part of every episode's seed.
        split: ``"train"``, ``"val"`` or ``"test"``, part of every episode's seed.
        seed: another seed gives other episodes.
    """

    def __init__(
        self,
        dataset: ClassDataset,
        config: SamplerConfig,
        benchmark: str = "custom",
        split: str = "train",
        seed: int = 0,
    ) -> None:
        config.validate()
        self.dataset, self.config = dataset, config
        self.benchmark, self.split, self.seed = benchmark, split, seed
        self.device = torch.device(config.device)
        self._rotations = 4 if config.rotations else 1
        self._base_classes = dataset.num_classes
        self._need = config.shots if config.mode == "train-train" else config.shots + config.queries
        self._index_tables()
        self._superclass_tables()
        self._check_sizes()
        self._augment = make_augment(config.augment)
        self._by_superclass = config.hierarchy == "within" or config.meta_batch_diversity
        self._rejection = 4 * config.ways <= self.num_classes
        self._num_images = len(dataset.images)
        self._in_memory = isinstance(dataset.images, Tensor)
        if config.rotations and not self._in_memory:
            self._check_rotatable(tuple(dataset.images.gather(torch.tensor([0])).shape[1:]))
        self._images = self._stored_images()
        self._unit_table: Tensor | None = None

    # ----------------------------------------------------------------------------- public API
    @property
    def num_classes(self) -> int:
        """Number of classes of the split (after rotations)."""
        return self._base_classes * self._rotations

    @property
    def superclasses(self) -> list[str] | None:
        """Superclass names (e.g. alphabets), or None when the dataset has none."""
        return self.dataset.superclass_names

    @property
    def ways(self) -> int:
        return self.config.ways

    @property
    def shots(self) -> int:
        return self.config.shots

    @property
    def queries(self) -> int:
        """Queries per class; equals ``shots`` in train-train mode (the query set is the support set)."""
        return self.config.shots if self.config.mode == "train-train" else self.config.queries

    def class_name(self, class_id: int) -> str:
        """Name of class ``class_id`` of this split, with ``@90``/``@180``/``@270`` for rotations."""
        base, rotation = class_id % self._base_classes, class_id // self._base_classes
        name = self.dataset.class_names[base]
        return f"{name}@{90 * rotation}" if rotation else name

    def episode(self, index: int) -> Episode:
        """Episode ``index`` of this split: the same for the same benchmark, split, seed and options."""
        return self.episodes([index]).task(0)

    def episodes(self, indices: Sequence[int]) -> EpisodeBatch | EpisodeList:
        """The episodes ``indices`` stacked into a meta-batch (task ``j`` is ``episode(indices[j])``);
        an :class:`~metazoo.episode.EpisodeList` for varied episodes."""
        if self.config.varied:
            return EpisodeList(tuple(self._varied_episode(i) for i in indices))
        return self._assemble(self._draw(list(indices)))

    def batch(self, index: int, meta_batch: int) -> EpisodeBatch:
        """Meta-batch ``index``: episodes ``index*meta_batch .. index*meta_batch + meta_batch - 1``.

        With ``meta_batch_diversity`` the batch is drawn jointly: a generator seeded with
        ``(benchmark, split, seed, "batch", meta_batch, index)`` deals the tasks distinct superclasses
        (cycling through a fresh permutation when there are more tasks than superclasses), then task
        ``j`` draws its classes inside its superclass from episode ``index*meta_batch + j``'s
        generator. Such a task differs from ``episode(index*meta_batch + j)``, which picks its own
        superclass.
        """
        first = index * meta_batch
        if not self.config.meta_batch_diversity:
            return self.episodes(range(first, first + meta_batch))
        generator = generator_for(self.benchmark, self.split, self.seed, "batch", meta_batch, index)
        eligible = self._eligible
        deals = [
            eligible[torch.randperm(len(eligible), generator=generator)]
            for _ in range(math.ceil(meta_batch / len(eligible)))
        ]
        groups = torch.cat(deals)[:meta_batch].tolist()
        return self._assemble(self._draw(range(first, first + meta_batch), groups))

    def __repr__(self) -> str:
        c = self.config
        return (
            f"EpisodeSampler({self.benchmark!r}, split={self.split!r}, seed={self.seed}, "
            f"{c.ways}-way {c.shots}-shot {self.queries}-query, mode={c.mode!r}, "
            f"classes={self.num_classes}, device={self.device})"
        )

    # ----------------------------------------------------------------------------- set-up
    def _index_tables(self) -> None:
        labels = self.dataset.labels
        self._order = torch.argsort(labels, stable=True)
        self._counts = self.dataset.class_counts
        self._offsets = torch.cumsum(self._counts, 0) - self._counts
        self._max_count = int(self._counts.max())
        self._equal_counts = bool((self._counts == self._max_count).all())

    def _superclass_tables(self) -> None:
        """Padded member lists of each superclass (rotated copies of a class keep its superclass)."""
        if self.config.hierarchy == "dag":
            groups = self.dataset.class_groups or []
            self._dag_groups = [g for g in groups if len(g) >= self.config.min_ways]
            if not self._dag_groups:
                raise ValueError(
                    f"{self._where()}: hierarchy='dag' needs class_groups of at least min_ways="
                    f"{self.config.min_ways} classes (Meta-Dataset's ILSVRC spec gives them; "
                    f"this dataset has {len(groups)} groups); lower min_ways or use 'uniform'"
                )
        superclass = self.dataset.superclass
        needs = self.config.hierarchy == "within" or self.config.meta_batch_diversity
        if superclass is None:
            if needs:
                raise ValueError(
                    f"{self._where()}: hierarchy='within' and meta_batch_diversity need superclasses, "
                    "but this dataset has none (give `superclass` to from_tensors / a superclass level)"
                )
            return
        all_classes = torch.arange(self.num_classes)
        of_class = superclass[all_classes % self._base_classes]
        count = int(of_class.max()) + 1
        members = [all_classes[of_class == s] for s in range(count)]
        self._member_counts = torch.tensor([len(m) for m in members])
        width = int(self._member_counts.max())
        self._members = torch.stack(
            [torch.nn.functional.pad(m, (0, width - len(m))) for m in members]
        )
        self._eligible = torch.nonzero(self._member_counts >= self.config.fewest_ways).flatten()
        if needs and len(self._eligible) == 0:
            raise ValueError(
                f"{self._where()}: no superclass has {self.config.fewest_ways} classes (largest has "
                f"{width}); lower `ways` or use hierarchy='uniform'"
            )

    def _check_sizes(self) -> None:
        ways = self.config.fewest_ways
        if self.config.varied and int(self._counts.min()) < 2:
            name = self.dataset.class_names[int(torch.argmin(self._counts))]
            raise ValueError(
                f"{self._where()}: varied episodes need 2 images per class (a shot and a query) "
                f"but class {name!r} has 1; remove it from the split"
            )
        if ways > self.num_classes:
            raise ValueError(
                f"{self._where()}: ways={ways} but the split has only {self.num_classes} classes"
                f"{' (after rotations)' if self.config.rotations else ''}; lower `ways`"
            )
        smallest = int(self._counts.min())
        if self._need > smallest and not (self.config.replacement or self.config.varied):
            name = self.dataset.class_names[int(torch.argmin(self._counts))]
            raise ValueError(
                f"{self._where()}: shots+queries={self._need} but class {name!r} has only {smallest} "
                "images; lower `shots`/`queries` or pass replacement=True to repeat images"
            )

    def _check_rotatable(self, shape: tuple[int, ...]) -> None:
        if len(shape) != 3 or shape[1] != shape[2]:
            raise ValueError(
                f"{self._where()}: rotations need square (C, H, W) images, got samples of shape {shape}"
            )

    def _where(self) -> str:
        return f"{self.benchmark} split {self.split!r}"

    # ----------------------------------------------------------------------------- drawing
    def _class_draws(self) -> int:
        """Uniforms per episode spent on choosing classes (see :meth:`_draw`)."""
        if self._by_superclass:
            return int(self._members.shape[1])
        return 2 * self.config.ways if self._rejection else self.num_classes

    def _draw(
        self, indices: Sequence[int], superclasses: list[int] | None = None
    ) -> dict[str, Any]:
        """Classes ``(T, N)`` and image rows ``(T, N, need)`` of the episodes ``indices``.

        Episode ``i``'s uniforms: ``[superclass pick | class draws | N x max_count image keys]``.
        """
        ways, tasks = self.config.ways, len(indices)
        class_draws = self._class_draws()
        uniforms, augment = episode_uniforms(
            (self.benchmark, self.split, self.seed),
            indices,
            1 + class_draws + ways * self._max_count,
            self._augment,
            ways * self.config.shots,
        )
        class_keys = uniforms[:, 1 : 1 + class_draws]
        if self._by_superclass:
            if superclasses is None:
                pick = (uniforms[:, 0] * len(self._eligible)).long()
                group = self._eligible[pick]
            else:
                group = torch.tensor(superclasses)
            chosen = choose_by_keys(class_keys, self._member_counts[group], ways)
            classes = self._members[group[:, None], chosen]
        elif self._rejection:
            classes, short = first_distinct((class_keys * self.num_classes).long(), ways)
            for row in torch.nonzero(short).flatten().tolist():  # rare: redraw from a side stream
                generator = generator_for(
                    self.benchmark, self.split, self.seed, indices[row], "classes"
                )
                classes[row] = torch.randperm(self.num_classes, generator=generator)[:ways]
        else:
            classes = choose_by_keys(class_keys, torch.full((tasks,), self.num_classes), ways)
        base = classes % self._base_classes
        image_keys = uniforms[:, 1 + class_draws :].view(tasks, ways, self._max_count)
        picks = choose_images(image_keys, self._counts[base], self._need, self._equal_counts)
        rotation = classes // self._base_classes
        # rotated copies are stored one after another: rotation r of image i is row r*n + i
        rows = self._order[self._offsets[base][..., None] + picks]
        rows += (rotation * self._num_images)[..., None]
        return {"classes": classes, "rows": rows, "augment": augment}

    def _varied_episode(self, index: int) -> Episode:
        """Episode ``index`` from Meta-Dataset's distribution (see :mod:`metazoo.data.varied`)."""
        generator = generator_for(self.benchmark, self.split, self.seed, "varied", index)
        shape = self.config.varied_shape()
        members = torch.arange(self.num_classes)
        if self._by_superclass:
            group = self._eligible[torch.randint(len(self._eligible), (), generator=generator)]
            members = self._members[group, : self._member_counts[group]]
        if self.config.hierarchy == "dag":
            classes = draw_dag_classes(self._dag_groups, shape.max_ways, generator)
        else:
            ways = draw_ways(shape, len(members), generator)
            classes = members[torch.randperm(len(members), generator=generator)[:ways]]
        ways = len(classes)
        base, rotation = classes % self._base_classes, classes // self._base_classes
        shots, queries = draw_shots(shape, self._counts[base], generator)
        rows = [
            self._order[
                self._offsets[b] + torch.randperm(int(n), generator=generator)[: k + queries]
            ]
            + r * self._num_images
            for b, n, k, r in zip(base, self._counts[base], shots.tolist(), rotation)
        ]
        labels = torch.arange(ways)
        support = self._gather(torch.cat([r[:k] for r, k in zip(rows, shots.tolist())]))
        support_y = self._to_device(labels.repeat_interleave(shots))
        if self.config.mode == "train-train":
            return Episode(support, support_y, support, support_y, ways, self._to_device(classes))
        query = self._gather(torch.cat([r[k:] for r, k in zip(rows, shots.tolist())]))
        query_y = self._to_device(labels.repeat_interleave(queries))
        return Episode(support, support_y, query, query_y, ways, self._to_device(classes))

    def _assemble(self, draw: dict[str, Any]) -> EpisodeBatch:
        """Gather the images of all tasks at once, straight into support and query order."""
        ways, shots, queries = self.config.ways, self.config.shots, self.queries
        indices = draw["rows"]  # (T, N, need)
        tasks = len(indices)
        support = self._gather(indices[:, :, :shots].flatten())
        support = support.view(tasks, ways * shots, *support.shape[1:])
        if self._augment is not None:
            support = self._augment.apply(support, draw["augment"])
        labels = torch.arange(ways, device=support.device)
        support_y = labels.repeat_interleave(shots).expand(tasks, -1)
        if self.config.mode == "train-train":
            query, query_y = support, support_y
        else:
            query = self._gather(indices[:, :, shots:].flatten())
            query = query.view(tasks, ways * queries, *query.shape[1:])
            query_y = labels.repeat_interleave(queries).expand(tasks, -1)
        classes = self._to_device(draw["classes"])
        return EpisodeBatch(support, support_y, query, query_y, ways, classes)

    def _to_device(self, t: Tensor) -> Tensor:
        """A host tensor on the sampler's device; to a GPU through pinned memory without
        blocking, so building a batch does not wait for the work already queued there."""
        if self.device.type == "cuda" and t.device.type == "cpu":
            return t.pin_memory().to(self.device, non_blocking=True)
        return t.to(self.device)

    def _gather(self, rows: Tensor) -> Tensor:
        """Images ``rows`` (``rotation * num_images + image``) as float ``(len(rows), C, H, W)``."""
        if self._in_memory:
            x = self._images.index_select(0, self._to_device(rows))
        else:
            image, rotation = rows % self._num_images, rows // self._num_images
            x = self._images.gather(image).to(self.device)
            for turns in (1, 2, 3):
                mask = (rotation == turns).to(x.device)
                if bool(mask.any()):
                    x[mask] = torch.rot90(x[mask], turns, dims=(-2, -1))
        return self._to_unit(x) if x.dtype == torch.uint8 else x

    def _to_unit(self, x: Tensor) -> Tensor:
        """uint8 -> float32 ``k / 255``, the same bits on every device.

        CPU division is correctly rounded; CUDA's is not always, so there the values are looked up
        in a table computed on the CPU (a gather is cheap on a GPU, slow on a CPU).
        """
        if x.device.type == "cpu":
            return x.to(torch.float32).div_(255.0)
        if self._unit_table is None:
            self._unit_table = (torch.arange(256, dtype=torch.float32) / 255.0).to(x.device)
        return self._unit_table[x.long()]

    def _stored_images(self) -> Tensor | Any:
        """The images as stored for sampling: with rotations, 4 rotated copies one after another."""
        images = self.dataset.images
        if not isinstance(images, Tensor):
            return images
        if not self.config.rotations:
            return images.to(self.device)
        self._check_rotatable(tuple(images.shape[1:]))
        # shared by every sampler of this dataset object (train and eval samplers, repeated calls)
        stored = self.dataset.__dict__.setdefault("_rotated", {})
        if str(self.device) not in stored:
            images = images.to(self.device)
            rotated = [torch.rot90(images, turns, dims=(-2, -1)) for turns in range(4)]
            stored[str(self.device)] = torch.cat(rotated)
        return stored[str(self.device)]
