"""Meta-training: one loop for every family, resumable checkpoints, validation and best-keeping.

>>> result = metazoo.training.train(learner, "omniglot-5w1s", TrainConfig(steps=2000))
"""

from metazoo.training.checkpoint import load_checkpoint
from metazoo.training.config import NonFiniteLossError, TrainConfig, TrainResult
from metazoo.training.loop import train

__all__ = ["train", "TrainConfig", "TrainResult", "NonFiniteLossError", "load_checkpoint"]
