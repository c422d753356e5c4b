"""The scenarios the 2-rank spawn runs (shared by conftest and the tests)."""

from __future__ import annotations

WORLD = 2
#: Equivalence scenarios: learners, steps, global meta-batch (2 ranks x 8 vs 1 process x 16).
SCENARIOS = (["maml", "protonet", "cnp", "reptile", "reptile-optimizer"], 4, 16)
#: Trainer runs share this config; ``checkpoint_dir`` is filled per run.
TRAIN_BASE = {"meta_batch": 16, "lr": 0.05, "val_every": 3, "val_episodes": 5, "log_every": 1}
REPTILE_RUN = ("reptile", {**TRAIN_BASE, "steps": 4, "val_every": 0})
#: Distributed evaluation: 7 episodes, so the blocks are uneven (3 and 4).
EVALUATION = ("protonet", 7)


def train_config(folder: str, steps: int, resume: bool = False) -> dict:
    return {**TRAIN_BASE, "steps": steps, "checkpoint_dir": folder, "resume": resume}
