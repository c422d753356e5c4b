"""The trainer's configuration and result types."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "TrainConfig",
    "TrainResult",
    "NonFiniteLossError",
    "TrainingInterrupted",
    "OPTIMIZERS",
    "SCHEDULES",
    "FAST_STEP_OPTIONS",
]

OPTIMIZERS = ("adam", "adamw", "sgd")
SCHEDULES = (None, "step", "cosine")
#: The options of ``fast_step``: fields of both :class:`TrainConfig` and ``FastOptions`` (the
#: engine step's, :mod:`metazoo.engine.fast`), passed through by :mod:`metazoo.training.step`.
FAST_STEP_OPTIONS = (
    "compile",
    "channels_last",
    "cudnn_benchmark",
    "batched_weight_gradients",
    "matmul_convolutions",
    "triton_convolutions",
)


@dataclass
class TrainConfig:
    """How to meta-train a learner (Adam 1e-3 by default, as MAML and ProtoNets do)."""

    #: number of meta-updates (optimizer steps).
    steps: int = 1000
    #: tasks per meta-update; None takes the benchmark card's ``meta_batch``.
    meta_batch: int | None = None
    #: outer learning rate.
    lr: float = 1e-3
    #: outer optimizer: ``adam``, ``adamw`` or ``sgd``.
    optimizer: str = "adam"
    #: weight decay of the outer optimizer.
    weight_decay: float = 0.0
    #: momentum (``sgd`` only).
    momentum: float = 0.0
    #: learning-rate schedule: None (constant), ``step`` (multiply by ``lr_gamma`` every
    #: ``lr_step_size`` steps) or ``cosine`` (anneal to 0 over ``steps``).
    lr_schedule: str | None = None
    #: steps between decays of the ``step`` schedule; None means a quarter of ``steps``.
    lr_step_size: int | None = None
    #: decay factor of the ``step`` schedule (ProtoNets halve every 2000 episodes).
    lr_gamma: float = 0.5
    #: clip the meta-gradient's global norm to this value; None for no clipping.
    grad_clip: float | None = None
    #: validate every this many steps (and after the last); 0 turns validation off.
    val_every: int = 500
    #: number of fixed validation episodes (``val`` split, episodes ``0..val_episodes-1``).
    val_episodes: int = 100
    #: seed of the training episodes, the validation episodes and torch's global RNG.
    seed: int = 0
    #: folder for ``last.pt`` (resumable) and ``best.pt``; None keeps nothing on disk.
    checkpoint_dir: str | None = None
    #: steps between checkpoints; None means ``val_every`` (or a tenth of ``steps`` without it).
    checkpoint_every: int | None = None
    #: continue from ``checkpoint_dir/last.pt`` when it exists.
    resume: bool = False
    #: delete the run already in ``checkpoint_dir`` (``last.pt``, ``best.pt``, ``result.json``)
    #: and start over; without it (or ``resume``) a folder holding a run is refused.
    overwrite: bool = False
    #: device to train on; None keeps the learner's.
    device: str | None = None
    #: steps averaged into one history entry (the learning curve's resolution).
    log_every: int = 10
    #: TF32 for matmuls and cuDNN convolutions while training: None keeps PyTorch's settings
    #: (cuDNN TF32 on by default), False trains in plain fp32 (as metazoo speed's fp32 rows), True
    #: turns both on. Recorded with the results either way.
    tf32: bool | None = None
    #: build the training episodes on the learner's device (the split's images copied there
    #: once; the same episodes bit for bit), not on the CPU and copied each step.
    sample_on_device: bool = False
    #: stop after this many minutes of training (then validate and checkpoint, and say so in the
    #: result's ``stopped``); None: run all ``steps``. For fixed time budgets (Slurm limits).
    max_minutes: float | None = None
    #: the fast step for the MAML family (every variant; the engine's ``FastMetaStep`` steps them
    #: always): metrics read back every ``log_every`` steps, not every step, and on CUDA the
    #: whole step replayed from one CUDA graph. The same meta-gradient. Unlocks the options below.
    fast_step: bool = False
    #: with ``fast_step``: ``torch.compile`` the meta-gradient (the first step pays the compile).
    compile: bool = False
    #: channels-last (NHWC) convolution weights, and with ``fast_step`` images too: faster
    #: convolution kernels on CPUs (oneDNN: 1.5-1.7x for Conv-4 on Omniglot here) and on some
    #: GPUs (``metazoo speed`` measures it). Not bit-identical to the default layout.
    channels_last: bool = False
    #: with ``fast_step``: let cuDNN time its convolution algorithms for the (static) shapes.
    cudnn_benchmark: bool = False
    #: with ``fast_step`` and ``compile``: the convolutions' per-task weight gradients as one
    #: batched matrix product instead of ``vmap``'s grouped convolution
    #: (``metazoo.engine.taskconv``).
    batched_weight_gradients: bool = False
    #: with ``batched_weight_gradients``: the per-task convolutions and input gradients as
    #: batched matrix products too (experimental: ``metazoo.experimental.lowerings``).
    matmul_convolutions: bool = False
    #: with ``batched_weight_gradients``: the per-task convolutions, input and weight gradients
    #: as implicit-GEMM Triton kernels (experimental, CUDA only, ``pip install 'metazoo[kernels]'``;
    #: ``metazoo.experimental.implicit_gemm``).
    triton_convolutions: bool = False

    def __post_init__(self) -> None:
        if self.steps < 1:
            raise ValueError(f"TrainConfig.steps must be >= 1, got {self.steps}")
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(
                f"TrainConfig.optimizer must be one of {OPTIMIZERS}, got {self.optimizer!r}"
            )
        if self.lr_schedule not in SCHEDULES:
            raise ValueError(
                f"TrainConfig.lr_schedule must be one of {SCHEDULES}, got {self.lr_schedule!r}"
            )
        for option in FAST_STEP_OPTIONS:
            if getattr(self, option) and not self.fast_step and option != "channels_last":
                raise ValueError(
                    f"TrainConfig.{option}=True needs fast_step=True (an option of it)"
                )
        if self.fast_step:  # how the options combine is FastOptions' rule
            from metazoo.engine.fast import FastOptions

            if self.matmul_convolutions or self.triton_convolutions:
                import metazoo.experimental.lowerings  # noqa: F401  (registers them)
            FastOptions(**{option: getattr(self, option) for option in FAST_STEP_OPTIONS})
        if self.max_minutes is not None and not self.max_minutes > 0:
            raise ValueError(f"TrainConfig.max_minutes must be > 0 or None, got {self.max_minutes}")
        if self.resume and not self.checkpoint_dir:
            raise ValueError("TrainConfig.resume=True needs checkpoint_dir (where last.pt lives)")
        if self.overwrite and not self.checkpoint_dir:
            raise ValueError(
                "TrainConfig.overwrite=True needs checkpoint_dir (the folder to reuse)"
            )

    def time_is_up(self, began: float) -> bool:
        """Whether ``max_minutes`` have passed since ``began`` (a ``time.perf_counter()``)."""
        return self.max_minutes is not None and time.perf_counter() - began >= 60 * self.max_minutes

    @property
    def save_every(self) -> int:
        """Steps between checkpoints, defaults resolved."""
        if self.checkpoint_every:
            return self.checkpoint_every
        return self.val_every if self.val_every > 0 else max(1, self.steps // 10)


@dataclass
class TrainResult:
    """What :func:`metazoo.training.train` returns.

    Attributes:
        history: learning-curve entries: ``{"kind": "train", "step", "loss", <metrics>, "lr",
            "tasks_per_s"}`` averaged over ``log_every`` steps, and ``{"kind": "val", "step",
            "mean", "ci95", "metric"}`` after each validation.
        best_val: best validation mean (accuracy in %, or MSE), None without validation.
        best_step: the step the best validation score was reached at.
        final_step: number of meta-updates done.
        best_checkpoint: path of ``best.pt`` when checkpointing.
        last_checkpoint: path of ``last.pt`` when checkpointing.
        seconds: wall time of this call (a resumed run counts only its own part).
        total_seconds: wall time of the whole run: this call plus the calls it resumed, up to
            the checkpoint it resumed from (``max_minutes`` limits each call, not the total).
        stopped: why training ended before ``steps`` (the ``max_minutes`` limit), else None.
    """

    history: list[dict[str, Any]] = field(default_factory=list)
    best_val: float | None = None
    best_step: int | None = None
    final_step: int = 0
    best_checkpoint: str | None = None
    last_checkpoint: str | None = None
    seconds: float = 0.0
    total_seconds: float = 0.0
    stopped: str | None = None


class NonFiniteLossError(RuntimeError):
    """The meta-loss became NaN or inf; names the step, the tasks and the last good checkpoint.

    Attributes:
        step: the 0-based step whose loss was not finite.
        task_indices: training-split episode indices of the offending tasks.
        last_checkpoint: path of the last good checkpoint, or None.
    """

    def __init__(
        self,
        message: str,
        step: int,
        task_indices: list[int],
        last_checkpoint: str | None,
        likely_rate: str | None = None,
    ):
        super().__init__(message)
        self.step = step
        self.task_indices = task_indices
        self.last_checkpoint = last_checkpoint
        #: ``"inner"`` or ``"outer"``: the learning rate that most likely caused it.
        self.likely_rate = likely_rate


class TrainingInterrupted(KeyboardInterrupt):
    """SIGINT or SIGTERM stopped training between two steps, after a checkpoint was written.

    A ``KeyboardInterrupt``, so code that stops on Ctrl-C still does.

    Attributes:
        step: steps done (the checkpoint's step; a resumed run goes on from here).
        steps: the steps the run was asked for.
        checkpoint: path of the ``last.pt`` just written, or None without ``checkpoint_dir``.
        signal_name: ``"SIGINT"`` or ``"SIGTERM"``.
    """

    def __init__(self, step: int, steps: int, checkpoint: str | None, signal_name: str):
        saved = f"saved {checkpoint}" if checkpoint else "nothing saved (no checkpoint_dir)"
        super().__init__(f"{signal_name} at step {step} of {steps}; {saved}")
        self.step, self.steps = step, steps
        self.checkpoint, self.signal_name = checkpoint, signal_name
