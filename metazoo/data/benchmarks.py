"""``make_sampler``: a sampler for a benchmark card (or for your own dataset), and ``list_benchmarks``.

A benchmark card (``registry/benchmarks/<name>.yaml``) names a dataset, its options
(``dataset_options``) and the episode shape (``ways``, ``shots``, ``queries``, and ``test_*`` for
the val and test splits). Loaders are looked up by the card's ``dataset`` field in :data:`LOADERS`.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable
from typing import Any

from metazoo.cards import benchmark_card, list_benchmark_cards
from metazoo.data.dataset import ClassDataset
from metazoo.data.sampler import EpisodeSampler, SamplerConfig
from metazoo.data.sinusoid import SinusoidConfig, SinusoidSampler

__all__ = [
    "make_sampler",
    "list_benchmarks",
    "LOADERS",
    "load_split",
    "SPLITS",
    "dataset_of",
    "benchmark_protocol",
]

SPLITS = ("train", "val", "test")


def _omniglot(split: str, class_split: str = "vinyals", image_size: int = 28, root=None):
    from metazoo.data.omniglot import omniglot_split

    return omniglot_split(split, class_split, root, image_size)


def _lazy(module: str, function: str) -> Callable[..., ClassDataset]:
    def load(split: str, **options: Any) -> ClassDataset:
        import importlib

        return getattr(importlib.import_module(module), function)(split, **options)

    return load


#: dataset name (a card's ``dataset`` field) -> ``loader(split, **dataset_options) -> ClassDataset``.
LOADERS: dict[str, Callable[..., ClassDataset]] = {
    "omniglot": _omniglot,
    "miniimagenet": _lazy("metazoo.data.miniimagenet", "miniimagenet_split"),
    "tieredimagenet": _lazy("metazoo.data.tieredimagenet", "tieredimagenet_split"),
    "cifarfs": _lazy("metazoo.data.cifar", "cifarfs_split"),
    "fc100": _lazy("metazoo.data.cifar", "fc100_split"),
    "cub": _lazy("metazoo.data.cub", "cub_split"),
    "metadataset": _lazy("metazoo.data.metadataset", "metadataset_split"),
    "emnist": _lazy("metazoo.data.emnist", "emnist_split"),
}
# options that shape episodes, not the loaded data
SAMPLER_OPTIONS = {"rotations", "varied", "min_ways", "hierarchy"}


def list_benchmarks() -> list[str]:
    """Names of the benchmark cards (``registry/benchmarks/*.yaml``)."""
    return list_benchmark_cards()


@functools.lru_cache(maxsize=16)
def _cached_split(dataset: str, split: str, options: tuple) -> ClassDataset:
    return LOADERS[dataset](split, **dict(options))


def load_split(dataset: str, split: str, **options: Any) -> ClassDataset:
    """One split of a named dataset (kept in memory per process, so samplers share it)."""
    if dataset not in LOADERS:
        raise ValueError(f"no loader for dataset {dataset!r}; known: {sorted(LOADERS)}")
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    frozen = {k: tuple(v) if isinstance(v, list) else v for k, v in options.items()}
    return _cached_split(dataset, split, tuple(sorted(frozen.items())))


def _episode_shape(card: dict[str, Any], split: str) -> dict[str, Any]:
    """ways/shots/queries of a split: the card's ``test_*`` fields for val and test, when present."""
    shape = {"ways": card.get("ways"), "shots": card["shots"], "queries": card["queries"]}
    if split in ("val", "test"):
        for key in shape:
            shape[key] = card.get(f"test_{key}", shape[key])
    return shape


def _split_overrides(overrides: dict[str, Any], fields: set[str], data_keys: set[str]) -> tuple:
    unknown = sorted(set(overrides) - fields - data_keys)
    if unknown:
        raise TypeError(
            f"unknown sampler option(s) {unknown}; allowed: {sorted(fields | data_keys)}"
        )
    config = {k: v for k, v in overrides.items() if k in fields}
    data = {k: v for k, v in overrides.items() if k in data_keys}
    return config, data


def make_sampler(
    benchmark: str | ClassDataset,
    split: str = "train",
    seed: int = 0,
    **overrides: Any,
) -> EpisodeSampler | SinusoidSampler:
    """The episode sampler of one split of a benchmark.

    Args:
        benchmark: a benchmark card name (see :func:`list_benchmarks`), or your own
            :class:`~metazoo.data.ClassDataset` (then ``ways``, ``shots`` and ``queries`` are needed).
        split: ``"train"``, ``"val"`` or ``"test"`` (val and test use the card's ``test_*`` shape).
        seed: another seed gives other episodes.
        **overrides: sampler options (:class:`SamplerConfig` / :class:`SinusoidConfig` fields:
            ``ways``, ``shots``, ``queries``, ``mode``, ``hierarchy``, ``meta_batch_diversity``,
            ``rotations``, ``augment``, ``replacement``, ``device``, ...) and dataset options
            (``image_size``, ``class_split``, ``root``, ...).
    """
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    if isinstance(benchmark, ClassDataset):
        fields = {f.name for f in dataclasses.fields(SamplerConfig)}
        config, _ = _split_overrides(overrides, fields, set())
        return EpisodeSampler(benchmark, SamplerConfig(**config), benchmark.name, split, seed)
    card = benchmark_card(benchmark)
    if card["dataset"] == "sinusoid":
        fields = {f.name for f in dataclasses.fields(SinusoidConfig)}
        shape = _episode_shape(card, split)
        shape.pop("ways")
        config, _ = _split_overrides(overrides, fields, set())
        return SinusoidSampler(SinusoidConfig(**{**shape, **config}), benchmark, split, seed)
    dataset_name, card_options = dataset_of(card, split)
    fields = {f.name for f in dataclasses.fields(SamplerConfig)}
    data_keys = (set(card_options) | {"root", "image_size"}) - SAMPLER_OPTIONS
    config, data = _split_overrides(overrides, fields, data_keys)
    data = {**{k: v for k, v in card_options.items() if k not in SAMPLER_OPTIONS}, **data}
    sampler_defaults = {k: v for k, v in card_options.items() if k in SAMPLER_OPTIONS}
    config = {**_episode_shape(card, split), **sampler_defaults, **config}
    if dataset_name == "metadataset":
        return _metadataset_sampler(benchmark, split, seed, data, config)
    dataset = load_split(dataset_name, split, **data)
    return EpisodeSampler(dataset, SamplerConfig(**config), benchmark, split, seed)


def dataset_of(card: dict[str, Any], split: str) -> tuple[str, dict[str, Any]]:
    """The dataset and dataset options a split of a benchmark reads: the card's ``test_dataset``
    and ``test_dataset_options`` for the test split of a cross-domain benchmark (trained on one
    dataset, tested on another), else ``dataset`` and ``dataset_options``."""
    if split == "test" and card.get("test_dataset"):
        return card["test_dataset"], dict(card.get("test_dataset_options") or {})
    return card["dataset"], dict(card.get("dataset_options") or {})


def benchmark_protocol(benchmark: Any) -> dict[str, Any]:
    """What a result records about a card's data protocol: ``domain`` (``train -> test``
    datasets) for a cross-domain benchmark, ``episode_shape: varied`` for Meta-Dataset's
    episodes of varying ways and shots, ``sources`` for Meta-Dataset; empty otherwise."""
    if not isinstance(benchmark, str):
        return {}
    card = benchmark_card(benchmark)
    options, protocol = card.get("dataset_options") or {}, {}
    if card.get("test_dataset"):
        protocol["domain"] = f"{card['dataset']} -> {card['test_dataset']}"
    if options.get("varied"):
        protocol["episode_shape"] = "varied"
    if options.get("sources"):
        protocol["sources"] = list(options.get("test_sources") or options["sources"])
    return protocol


def _metadataset_sampler(benchmark: str, split: str, seed: int, data: dict, config: dict):
    """One source's sampler, or a :class:`MultiSourceSampler` over several (one per episode).

    ``sources`` are the training sources; ``test_sources`` (default: ``sources``) the test
    split's. Each source's episodes are seeded by ``<benchmark>/<source>``, so a source's
    episodes are the same alone (per-source evaluation) as inside the multi-source sampler.
    """
    from metazoo.data.metadataset import source_hierarchy
    from metazoo.data.multisource import MultiSourceSampler

    sources = data.pop("sources", None)
    test_sources = data.pop("test_sources", None)
    sources = list(test_sources or sources) if split == "test" else list(sources or [])
    samplers = {}
    for source in sources:
        dataset = load_split("metadataset", split, source=source, **data)
        options = {"hierarchy": source_hierarchy(source, dataset), **config}
        samplers[source] = EpisodeSampler(
            dataset, SamplerConfig(**options), f"{benchmark}/{source}", split, seed
        )
    if len(samplers) == 1:
        return samplers[sources[0]]
    return MultiSourceSampler(samplers, benchmark, split, seed)
