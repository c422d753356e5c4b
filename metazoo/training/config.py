"""The trainer's configuration and result types."""

from __future__ import annotations

import dataclasses
import time
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from metazoo.engine.fast import FastOptions

__all__ = [
    "TrainConfig",
    "TrainResult",
    "NonFiniteLossError",
    "TrainingInterrupted",
    "OPTIMIZERS",
    "SCHEDULES",
    "MOVED_TO_FAST",
    "moved_setting",
    "with_moved_settings",
]

OPTIMIZERS = ("adam", "adamw", "sgd")
SCHEDULES = (None, "step", "cosine")
#: Former TrainConfig fields, options of ``fast`` now: name -> how to write it instead.
MOVED_TO_FAST = {
    "fast_step": "fast=true (Python: TrainConfig(fast=FastOptions()))",
    **{
        name: f"fast={{{name}: true}} (Python: TrainConfig(fast=FastOptions({name}=True)))"
        for name in (
            "compile",
            "cudnn_benchmark",
            "batched_weight_gradients",
            "matmul_convolutions",
            "triton_convolutions",
        )
    },
}
#: FastOptions fields the trainer fills: from the learner's config (``executor``, ``chunk``:
#: its ``chunk_size``) and from TrainConfig (``grad_clip``, ``channels_last``).
FILLED_BY_TRAINER = ("executor", "chunk", "grad_clip", "channels_last")


def moved_setting(key: str) -> str | None:
    """What to write instead of a former TrainConfig field ``key`` (None: not one of them)."""
    if key not in MOVED_TO_FAST:
        return None
    return (
        f"training setting {key!r} is an option of the opt-in fast step now (TrainConfig.fast, "
        f"the one home of its options): write {MOVED_TO_FAST[key]}"
    )


def with_moved_settings(train: Mapping[str, Any], where: str) -> dict[str, Any]:
    """Training settings with former TrainConfig fields (:data:`MOVED_TO_FAST`, typed values)
    turned into ``fast``, each with a ``FutureWarning`` saying the new spelling.

    ``fast_step: true`` becomes ``fast: {}``, ``compile: true`` ``fast: {compile: true}``; all
    off, ``fast`` is not set. A ``fast`` given beside them wins.
    """
    moved = [key for key in train if key in MOVED_TO_FAST]
    for key in moved:
        warnings.warn(f"{where}: {moved_setting(key)}", FutureWarning, stacklevel=2)
    kept = {k: v for k, v in train.items() if k not in MOVED_TO_FAST}
    switches = {k: True for k in moved if k != "fast_step" and train[k]}
    if (train.get("fast_step") or switches) and "fast" not in kept:
        kept["fast"] = switches
    return kept


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
    #: channels-last (NHWC) convolution weights, for every learner (and with ``fast``, the
    #: images too): faster convolution kernels on CPUs (oneDNN: 1.5-1.7x for Conv-4 on Omniglot
    #: here) and on some GPUs (``metazoo speed`` measures it). Not bit-identical to the default.
    channels_last: bool = False
    #: the fast step, an opt-in accelerator for the MAML family: None (the default) trains with
    #: the plain step (``metazoo.engine.plain``: the meta-gradient accumulated task by task, no
    #: graph object); a :class:`~metazoo.engine.fast.FastOptions` trains with
    #: ``FastMetaStep``: the same meta-gradient, metrics read back every ``log_every`` steps, on
    #: CUDA the whole step replayed from one CUDA graph, and its options (``compile``,
    #: ``cudnn_benchmark``, the experimental convolution lowerings...). In settings:
    #: ``fast: true`` or ``fast: {compile: true}``. Its ``executor`` and ``chunk`` come from the
    #: learner's config, ``grad_clip`` and ``channels_last`` from this one.
    fast: FastOptions | None = None

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
        self.fast = _fast_options(self.fast)
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


def _fast_options(value: Any) -> FastOptions | None:
    """``TrainConfig.fast`` as given in settings (``true``, ``false``, a mapping of
    :class:`FastOptions` fields) or in Python, checked."""
    if value is None or value is False:
        return None
    if value is True:
        return FastOptions()
    if isinstance(value, dict):
        unknown = sorted(set(value) - {f.name for f in dataclasses.fields(FastOptions)})
        if unknown:
            raise ValueError(
                f"TrainConfig.fast: unknown option(s) {unknown}; FastOptions has "
                f"{[f.name for f in dataclasses.fields(FastOptions)]}"
            )
        if any(value.get(k) for k in _LOWERING_OPTIONS):  # opted into the experimental ones
            import metazoo.experimental.lowerings  # noqa: F401  (registers every lowering)
        value = FastOptions(**value)
    if not isinstance(value, FastOptions):
        raise TypeError(
            f"TrainConfig.fast must be None, true or FastOptions (a mapping of its options in "
            f"settings), got {value!r}"
        )
    filled = [n for n in FILLED_BY_TRAINER if getattr(value, n) != _FAST_DEFAULTS[n]]
    if filled:
        raise ValueError(
            f"TrainConfig.fast sets {filled}, which the trainer fills: set executor and "
            "chunk_size in the learner's config, grad_clip and channels_last in TrainConfig"
        )
    return value


_FAST_DEFAULTS = {f.name: f.default for f in dataclasses.fields(FastOptions)}
#: FastOptions fields that opt into the experimental per-task convolutions.
_LOWERING_OPTIONS = ("batched_weight_gradients", "matmul_convolutions", "triton_convolutions")


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
