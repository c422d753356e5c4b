"""Meta-training: one loop for every family, resumable checkpoints, validation and best-keeping.

>>> result = metazoo.training.train(learner, "omniglot-5w1s", TrainConfig(steps=2000))

Internal: not part of metazoo's public API ("Public names" in docs/design.md).
"""

from metazoo.training.checkpoint import UnsafeCheckpointError, convert_checkpoint, load_checkpoint
from metazoo.training.config import (
    NonFiniteLossError,
    TrainConfig,
    TrainingInterrupted,
    TrainResult,
)
from metazoo.training.loop import print_progress, train

__all__ = [
    "train",
    "TrainConfig",
    "TrainResult",
    "NonFiniteLossError",
    "TrainingInterrupted",
    "load_checkpoint",
    "convert_checkpoint",
    "UnsafeCheckpointError",
    "print_progress",
]
