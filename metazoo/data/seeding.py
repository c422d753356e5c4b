"""Stable seeds for episodes: a hash of (benchmark, split, seed, index), never Python's ``hash()``.

Every random draw of the sampler comes from a ``torch.Generator`` seeded here, so an episode depends
only on what it is (which benchmark, split, seed and index) and not on the process, the worker, the
batch it is drawn in, or the machine.
"""

from __future__ import annotations

import hashlib

import torch

__all__ = ["stable_seed", "generator_for"]

_MASK_63 = (1 << 63) - 1


def stable_seed(*parts: object) -> int:
    """A 63-bit seed from the ``str()`` of each part (blake2b, identical on every machine).

    Args:
        *parts: e.g. ``("omniglot-5w1s", "train", 0, "episode", 17)``.
    """
    key = "\x1f".join(str(part) for part in parts).encode()
    return int.from_bytes(hashlib.blake2b(key, digest_size=8).digest(), "little") & _MASK_63


def generator_for(*parts: object) -> torch.Generator:
    """A CPU ``torch.Generator`` seeded with :func:`stable_seed` of ``parts``."""
    generator = torch.Generator()
    generator.manual_seed(stable_seed(*parts))
    return generator
