"""What fixes a set of evaluation episodes: every sampler and dataset option, and a content digest.

Two results can be paired episode by episode only when they were evaluated on the same episodes.
The sampler options say how the episodes were drawn (class split, rotations, image size, ways,
shots, queries, mode, hierarchy, augmentation, ...); the digest says what they contained (a hash of
every episode's tensors), so a changed dataset or sampler is caught even when the options agree.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Sequence
from typing import Any

from torch import Tensor

from metazoo._atomic import json_safe
from metazoo.episode import Episode

__all__ = [
    "sampler_options",
    "episode_digest",
    "combine_digests",
    "first_difference",
    "episode_mismatch",
]

#: Sampler fields that say where episodes live, not what they are.
_PLACEMENT = ("device",)


def sampler_options(sampler: Any) -> dict[str, Any]:
    """Every option that decides the episodes of ``sampler``, JSON-safe.

    Args:
        sampler: an :class:`~metazoo.data.EpisodeSampler`, a sinusoid sampler, or any object with a
            dataclass ``config`` (custom benchmarks); an ``options()`` method wins when present.

    Returns:
        ``benchmark``, ``split``, ``seed``, the sampler config's fields (ways, shots, queries,
        mode, hierarchy, rotations, augment, ...) and, for image datasets, the dataset's name (which
        names its class split), class count and image shape.
    """
    custom = getattr(sampler, "options", None)
    if callable(custom):
        return json_safe(dict(custom()))
    options: dict[str, Any] = {
        key: getattr(sampler, key)
        for key in ("benchmark", "split", "seed")
        if hasattr(sampler, key)
    }
    config = getattr(sampler, "config", None)
    if dataclasses.is_dataclass(config):
        for field in dataclasses.fields(config):
            if field.name not in _PLACEMENT:
                value = getattr(config, field.name)
                options[field.name] = (
                    getattr(value, "__qualname__", value) if callable(value) else value
                )
    dataset = getattr(sampler, "dataset", None)
    if dataset is not None:
        options["dataset"] = getattr(dataset, "name", type(dataset).__name__)
        options["dataset_classes"] = getattr(sampler, "num_classes", None)
        images = getattr(dataset, "images", None)
        shape = getattr(images, "shape", None)
        options["image_shape"] = list(shape[1:]) if shape is not None else None
    return json_safe(options)


def _tensor_bytes(tensor: Tensor) -> bytes:
    flat = tensor.detach().to("cpu").contiguous()
    return str(flat.dtype).encode() + str(tuple(flat.shape)).encode() + flat.numpy().tobytes()


def episode_digest(episode: Episode) -> int:
    """A 64-bit hash of one episode's support and query tensors (values, dtypes and shapes)."""
    digest = hashlib.sha256()
    for tensor in (episode.support_x, episode.support_y, episode.query_x, episode.query_y):
        digest.update(_tensor_bytes(tensor))
    return int.from_bytes(digest.digest()[:8], "little")


def combine_digests(digests: Sequence[int]) -> str:
    """One hex digest of a sequence of :func:`episode_digest` values, in episode order."""
    digest = hashlib.sha256()
    for value in digests:
        digest.update(int(value).to_bytes(8, "little"))
    return digest.hexdigest()[:32]


def first_difference(a: dict[str, Any], b: dict[str, Any]) -> str | None:
    """The first option whose value differs between two :func:`sampler_options` records, shown as
    ``"queries: 15 vs 5"``; None when they agree."""
    for key in sorted(set(a) | set(b)):
        if a.get(key) != b.get(key):
            return f"{key}: {a.get(key, '(not recorded)')!r} vs {b.get(key, '(not recorded)')!r}"
    return None


def episode_mismatch(a: dict[str, Any], b: dict[str, Any]) -> str | None:
    """Why two results' protocols are not on the same episodes, or None when they are.

    Args:
        a: the ``protocol`` of one :class:`~metazoo.evaluation.EvalResult`.
        b: the other's.

    Returns:
        ``"class split/dataset differs: 'omniglot/vinyals/test' vs 'omniglot/maml/test'"``-style
        text naming the first sampler option that differs, or the episodes' contents when every
        option agrees but the digests do not (the data or the sampler changed).
    """
    missing = [name for name, p in (("first", a), ("second", b)) if "sampler" not in p]
    if missing:
        return (
            f"the {' and '.join(missing)} result records no sampler options and episode digest "
            "(written by an older metazoo): evaluate it again"
        )
    option = first_difference(a["sampler"], b["sampler"])
    if option is not None:
        return f"sampler option {option}"
    if a.get("episodes_digest") != b.get("episodes_digest"):
        return (
            "the episodes' contents (every option agrees, but the images or labels differ: "
            "another copy or version of the dataset, or another sampler version)"
        )
    return None
