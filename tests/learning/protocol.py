"""The short CPU learning protocol shared by tests/learning and ``lab/records/record_learning.py``.

Each learner is meta-trained for a fixed number of steps on Omniglot 5-way 1-shot (train split,
Vinyals classes) with the project's trainer, then evaluated by the project's harness on fixed
episodes of the held-out test classes. CNP is also trained on sinusoid regression, 10-shot. The
budgets are fixed step counts (deterministic), sized to take at most about a minute each on two CPU
cores; ``seconds`` in the record says how long they took where they ran.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field
from typing import Any

import torch

from metazoo import TrainConfig, build_learner, evaluate, train


@dataclass(frozen=True)
class Protocol:
    """One short training run and its evaluation."""

    learner: str  #: registered learner name
    benchmark: str = "omniglot-5w1s"  #: benchmark card
    steps: int = 100  #: meta-updates
    meta_batch: int = 8  #: tasks per meta-update
    lr: float = 1e-3  #: Adam learning rate
    train_overrides: dict[str, Any] = field(default_factory=lambda: {"queries": 5})
    eval_overrides: dict[str, Any] = field(default_factory=lambda: {"queries": 5})
    eval_episodes: int = 100  #: fixed test episodes 0..eval_episodes-1 (seed 0)
    backbone_options: dict[str, Any] = field(default_factory=lambda: {"hidden": 32})
    config: dict[str, Any] = field(default_factory=dict)  #: learner config overrides
    grad_clip: float | None = None  #: meta-gradient norm clipping
    threshold: float = 0.0  #: the learning test's bound (accuracy above, or MSE fraction below)

    @property
    def key(self) -> str:
        """Record label: the learner, plus the benchmark when it is not Omniglot 5-way 1-shot."""
        return (
            self.learner
            if self.benchmark == "omniglot-5w1s"
            else f"{self.learner}-{self.benchmark}"
        )


# Each classification threshold's margin over chance (20% on 5-way episodes) is in its comment. A
# budget is cut (fewer steps) only at the same threshold, verified single-threaded: the comment then
# gives the accuracy the cut budget reached (CPU seconds of training, on a loaded 2-core machine).
PROTOCOLS: dict[str, Protocol] = {
    p.key: p
    for p in [
        Protocol("protonet", steps=200, threshold=80.0),  # chance + 60 points
        Protocol("matchingnet", steps=200, threshold=65.0),  # chance + 45 points
        Protocol(  # chance + 50 points; 150 steps (131 CPU s): 84.8%, 90 steps (56 CPU s): 79.0%
            "relationnet",
            steps=90,
            backbone_options={"hidden": 32, "downsampled_blocks": 2},  # Sung et al.'s 7x7 maps
            config={"relation_channels": 32},
            threshold=70.0,
        ),
        Protocol(  # chance + 30 points; 300 steps (132 CPU s): 70.8%, 240 steps (85 CPU s): 65.5%
            "snail",
            steps=240,
            lr=3e-3,
            config={
                "max_shots": 1,
                "attention_sizes": [[32, 16], [64, 32], [64, 32]],
                "tc_filters": 32,
            },
            threshold=50.0,
        ),
        Protocol(  # chance + 30 points; 800 steps (107 CPU s): 68.0%, 500 steps (50 CPU s): 60.1%
            "mann",
            steps=500,
            meta_batch=16,
            backbone_options={},
            config={"controller_size": 128, "memory_slots": 32, "memory_width": 32},
            grad_clip=10.0,
            threshold=50.0,
        ),
        # chance + 50 points; 150 steps (366 CPU s): 82.8%, 50 steps (73 CPU s): 80.6%
        Protocol("metaoptnet", steps=50, threshold=70.0),
        Protocol("baselinepp", steps=200, lr=3e-3, threshold=50.0),  # chance + 30 points
        # chance + 30 points
        Protocol("transductive_ft", steps=200, lr=3e-3, eval_episodes=50, threshold=50.0),
        # chance + 28 points; 250 steps (133 CPU s): 57.2%, 150 steps (59 CPU s): 54.0%
        Protocol("cnp", steps=150, config={"conv_hidden": 32}, backbone_options={}, threshold=48.0),
        # The MAML family at the inner-loop settings build_learner takes from the cards (the
        # papers' Omniglot settings), so a wrong default fails: ANIL at MAML's sinusoid step size
        # 0.01, or Reptile tested with SGD and its 5 training steps, stayed near chance.
        Protocol("maml", meta_batch=4, threshold=40.0),  # chance + 20 points
        Protocol("fomaml", threshold=40.0),  # chance + 20 points
        Protocol("anil", threshold=45.0),  # chance + 25 points
        Protocol("metasgd", meta_batch=4, threshold=45.0),  # chance + 25 points
        # chance + 40 points; 5 second-order steps
        Protocol("mamlpp", steps=40, meta_batch=2, threshold=60.0),
        # chance + 25 points; 50 Adam steps per test episode (the paper's): fewer episodes keep
        # it near a minute
        Protocol("reptile", steps=60, meta_batch=5, eval_episodes=40, threshold=45.0),
        Protocol(
            "cnp",
            benchmark="sinusoid",
            steps=2000,
            meta_batch=16,
            train_overrides={},
            eval_overrides={"shots": 10},
            backbone_options={},
            threshold=0.25,  # test MSE below a quarter of the targets' mean square
        ),
    ]
}


def run_protocol(protocol: Protocol) -> dict[str, Any]:
    """Train and evaluate as ``protocol`` says, on one CPU thread; returns a JSON-safe record.

    One thread: on two shared cores, intra-op threads fight the other processes (measured here:
    a Conv-4 step 20x slower with two threads than with one under load), and one thread makes the
    timings comparable between machines.
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return _run(protocol)
    finally:
        torch.set_num_threads(threads)


def _run(protocol: Protocol) -> dict[str, Any]:
    torch.manual_seed(0)
    learner = build_learner(
        protocol.learner,
        protocol.benchmark,
        backbone_options=protocol.backbone_options or None,
        **protocol.config,
    )
    config = TrainConfig(
        steps=protocol.steps,
        meta_batch=protocol.meta_batch,
        lr=protocol.lr,
        val_every=0,
        seed=0,
        grad_clip=protocol.grad_clip,
        log_every=max(1, protocol.steps // 10),
    )
    start = time.perf_counter()
    cpu_start = time.process_time()
    trained = train(learner, protocol.benchmark, config, **protocol.train_overrides)
    train_seconds = time.perf_counter() - start
    train_cpu_seconds = time.process_time() - cpu_start
    result = evaluate(
        learner,
        protocol.benchmark,
        episodes=protocol.eval_episodes,
        seed=0,
        **protocol.eval_overrides,
    )
    return {
        "protocol": dataclasses.asdict(protocol),
        "train_seconds": round(train_seconds, 2),
        "train_cpu_seconds": round(train_cpu_seconds, 2),
        "torch_threads": torch.get_num_threads(),
        "history": trained.history,
        "result": result.to_dict(),
    }
