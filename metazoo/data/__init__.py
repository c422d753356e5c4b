"""Datasets and the one episodic task sampler.

``make_sampler(benchmark, split, seed, **overrides)`` gives a sampler whose ``episode(i)`` and
``batch(i, meta_batch)`` are the same on every run, worker count and machine. See ``docs/data.md``.

Internal: not part of metazoo's public API ("Public names" in docs/design.md).
"""

from metazoo.data.benchmarks import LOADERS, list_benchmarks, load_split, make_sampler
from metazoo.data.dataset import ClassDataset, from_tensors
from metazoo.data.images import image_folder
from metazoo.data.loader import EpisodeDataset, episode_loader
from metazoo.data.paths import MissingDataError
from metazoo.data.sampler import EpisodeSampler, SamplerConfig
from metazoo.data.sinusoid import SinusoidConfig, SinusoidSampler

__all__ = [
    "make_sampler",
    "list_benchmarks",
    "load_split",
    "LOADERS",
    "ClassDataset",
    "from_tensors",
    "image_folder",
    "EpisodeSampler",
    "SamplerConfig",
    "SinusoidSampler",
    "SinusoidConfig",
    "EpisodeDataset",
    "episode_loader",
    "MissingDataError",
]
