"""The meta-training loop shared by every family.

Step ``s`` (0-based) trains on ``sampler.batch(s, meta_batch)`` of the ``train`` split: the sampler
position is the step itself, so with the optimizer, scheduler and RNG states restored a resumed run
sees exactly the batches and random numbers an uninterrupted one would, and ends at the same weights.
Progress is reported through a callback; progress bars live in ``metazoo.cli``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import sys
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import torch
from torch import nn

from metazoo import distributed as dist
from metazoo._atomic import json_safe
from metazoo.engine.precision import tf32
from metazoo.engine.threads import threads_for_run
from metazoo.evaluation.harness import (
    benchmark_name,
    config_dict,
    evaluate,
    learner_name,
    open_sampler,
)
from metazoo.training.checkpoint import (
    FORMAT,
    claim_run_folder,
    learner_distribution,
    load_checkpoint,
    restore_rng,
    rng_state,
    save_checkpoint,
    stop_requests,
)
from metazoo.training.config import TrainConfig, TrainingInterrupted, TrainResult
from metazoo.training.divergence import diverged
from metazoo.training.optim import make_optimizer, make_scheduler
from metazoo.training.step import DeferredMetrics, build_train_step

__all__ = ["train", "make_optimizer", "make_scheduler", "print_progress"]

Callback = Callable[[dict[str, Any]], None]
#: TrainConfig fields a resumed run may change without changing what is computed.
_RESUMABLE_CHANGES = {
    "steps",
    "resume",
    "overwrite",
    "checkpoint_dir",
    "device",
    "checkpoint_every",
    "log_every",
    "max_minutes",
    "fast",
    "channels_last",
    "sample_on_device",
}


def print_progress(every: int = 10) -> Callback:
    """The default callback of :func:`train`: a line on stderr every ``every`` steps and after
    each validation (``step 10/1000  loss 1.2034  accuracy 48.20  31.0 tasks/s``)."""

    def report(event: dict[str, Any]) -> None:
        kind, step, steps = event.get("kind"), event.get("step"), event.get("steps")
        if kind == "step" and (step % every == 0 or step == steps):
            shown = {k: v for k, v in event.items() if k not in ("kind", "step", "steps", "lr")}
            values = "  ".join(f"{k} {v:.4g}" for k, v in shown.items())
            print(f"step {step}/{steps}  {values}", file=sys.stderr, flush=True)
        elif kind == "val":
            print(
                f"validation at step {step}: {event['metric']} {event['mean']:.4g} "
                f"± {event['ci95']:.2g}{'  (best)' if event['best'] else ''}",
                file=sys.stderr,
                flush=True,
            )
        elif kind == "resume":
            print(f"resumed at step {step}/{steps}", file=sys.stderr, flush=True)

    return report


@contextlib.contextmanager
def _distributions_unchecked():
    """Distributions built while training take NaN parameters, so a diverged model-based learner
    (CNP's Normal) gives a NaN loss the trainer names, not a torch.distributions traceback."""
    before = torch.distributions.Distribution._validate_args
    torch.distributions.Distribution.set_default_validate_args(False)
    try:
        yield
    finally:
        torch.distributions.Distribution.set_default_validate_args(before)


def _default_meta_batch(benchmark: Any) -> int:
    if isinstance(benchmark, str):
        from metazoo.cards import benchmark_card

        return int(benchmark_card(benchmark)["meta_batch"])
    value = getattr(benchmark, "meta_batch", None)
    if value is None:
        raise ValueError("set TrainConfig.meta_batch: this benchmark object does not give one")
    return int(value)


@dataclasses.dataclass
class _Run:
    """Everything that changes during training and goes into a checkpoint."""

    learner: nn.Module
    benchmark: Any
    config: TrainConfig
    overrides: dict[str, Any]
    metadata: dict[str, Any]
    meta_batch: int
    optimizer: torch.optim.Optimizer
    scheduler: Any
    callback: Callback | None
    step: int = 0
    best_val: float | None = None
    best_step: int | None = None
    best_state: dict[str, torch.Tensor] | None = None
    history: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    window: list[dict[str, float]] = dataclasses.field(default_factory=list)
    last_saved: str | None = None
    train_overrides: dict[str, Any] = dataclasses.field(default_factory=dict)
    #: wall seconds of the earlier calls this run resumed from (read from ``last.pt``).
    earlier_seconds: float = 0.0
    #: ``time.perf_counter()`` when this call began.
    started: float = dataclasses.field(default_factory=time.perf_counter)

    def seconds(self) -> float:
        """Wall seconds of the whole run so far: the earlier calls plus this one."""
        return self.earlier_seconds + time.perf_counter() - self.started

    def path(self, name: str) -> Path | None:
        return Path(self.config.checkpoint_dir) / name if self.config.checkpoint_dir else None

    def emit(self, event: dict[str, Any]) -> None:
        if self.callback is not None:
            self.callback(event)


def _header(run: _Run) -> dict[str, Any]:
    return {
        "format": FORMAT,
        "learner": learner_name(run.learner),
        "learner_distribution": learner_distribution(learner_name(run.learner)),
        "learner_config": config_dict(run.learner),
        "benchmark": benchmark_name(run.benchmark),
        "sampler_overrides": json_safe(run.overrides),
        "train_sampler_overrides": json_safe(run.train_overrides),
        "train_config": dataclasses.asdict(run.config),
        "metadata": run.metadata,
        "meta_batch": run.meta_batch,
    }


def _save_last(run: _Run) -> None:
    path = run.path("last.pt")
    if path is None:
        return
    state = {
        **_header(run),
        "kind": "last",
        "step": run.step,
        # the next batch is sampler.batch(step, meta_batch) of this split and seed
        "sampler_position": {
            "split": "train",
            "seed": run.config.seed,
            "next_batch_index": run.step,
            "meta_batch": run.meta_batch,
        },
        "learner_state": run.learner.state_dict(),
        "optimizer_state": run.optimizer.state_dict(),
        "scheduler_state": run.scheduler.state_dict() if run.scheduler else None,
        "rng": rng_state(),
        "best_val": run.best_val,
        "best_step": run.best_step,
        "best_state": run.best_state,
        "history": run.history,
        "seconds": run.seconds(),  # a resumed run goes on counting from here
    }
    dist.on_main(save_checkpoint, state, path)  # rank 0 writes; every rank waits for the file
    run.last_saved = str(path)


def _restore(run: _Run) -> bool:
    """Load ``last.pt`` into ``run`` when resuming; False when there is nothing to resume."""
    path = run.path("last.pt")
    if not run.config.resume or path is None or not path.is_file():
        return False
    ckpt = load_checkpoint(path)
    if ckpt["learner"] != learner_name(run.learner):
        raise ValueError(
            f"{path} holds a {ckpt['learner']!r} run, not {learner_name(run.learner)!r}; "
            "give another run folder (`--out` in `metazoo train`, `checkpoint_dir` in "
            "TrainConfig), or start a new run instead of resuming"
        )
    stored = ckpt["train_config"]
    changed = sorted(
        k
        for k, v in dataclasses.asdict(run.config).items()
        if k not in _RESUMABLE_CHANGES and stored.get(k) != v
    )
    if changed:
        diffs = ", ".join(f"{k}: {stored.get(k)!r} -> {getattr(run.config, k)!r}" for k in changed)
        raise ValueError(
            f"cannot resume {path}: the config changed ({diffs}); resume with the original values "
            "or start a new run in another folder (`--out` in `metazoo train`, `checkpoint_dir` in "
            "TrainConfig)"
        )
    run.learner.load_state_dict(ckpt["learner_state"])
    run.optimizer.load_state_dict(ckpt["optimizer_state"])
    if run.scheduler is not None and ckpt["scheduler_state"] is not None:
        run.scheduler.load_state_dict(ckpt["scheduler_state"])
    restore_rng(ckpt["rng"])
    run.step, run.history = ckpt["step"], ckpt["history"]
    run.earlier_seconds = ckpt.get("seconds", 0.0)  # absent in checkpoints before it was stored
    run.best_val, run.best_step, run.best_state = (
        ckpt["best_val"],
        ckpt["best_step"],
        ckpt["best_state"],
    )
    run.last_saved = str(path)
    return True


def _log(run: _Run, step: int, metrics: dict[str, float], seconds: float) -> None:
    """Log the metrics of step ``step`` (counted from 1); the history gets window means."""
    lr = metrics.get("lr", run.optimizer.param_groups[0]["lr"])
    event = {**metrics, "lr": float(lr), "tasks_per_s": run.meta_batch / max(seconds, 1e-9)}
    run.window.append(event)
    run.emit({"kind": "step", "step": step, "steps": run.config.steps, **event})
    if step % run.config.log_every == 0 or step == run.config.steps:
        keys = run.window[0].keys()
        mean = {k: sum(e.get(k, math.nan) for e in run.window) / len(run.window) for k in keys}
        run.history.append({"kind": "train", "step": step, **mean})
        run.window = []


def _log_pending(run: _Run, deferred: DeferredMetrics, sampler: Any, device) -> None:
    """Log the steps read back together; a non-finite loss of a graphed step raises as in the
    others, though that step's update and the later ones of the window are applied by then."""
    for index, metrics, seconds in deferred.flush():
        if not math.isfinite(metrics["loss"]):
            batch = dist.local_tasks(sampler.batch(index, run.meta_batch)).to(device)
            raise diverged(run, batch, metrics["loss"], step=index)
        _log(run, index + 1, metrics, seconds)


def _validate(run: _Run) -> None:
    result = evaluate(
        run.learner,
        run.benchmark,
        episodes=run.config.val_episodes,
        seed=run.config.seed,
        split="val",
        **run.overrides,
    )
    run.learner.train()
    better = run.best_val is None or (
        result.mean > run.best_val if result.higher_is_better else result.mean < run.best_val
    )
    entry = {"kind": "val", "step": run.step, "metric": result.metric, "mean": result.mean}
    entry["seconds"] = run.seconds()  # wall time of the run so far: curves against time
    run.history.append({**entry, "ci95": result.ci95, "best": better})
    if better:
        run.best_val, run.best_step = result.mean, run.step
        run.best_state = {k: v.detach().clone() for k, v in run.learner.state_dict().items()}
        path = run.path("best.pt")
        if path is not None:
            best = {**_header(run), "kind": "best", "step": run.step, "val": result.mean}
            dist.on_main(save_checkpoint, {**best, "learner_state": run.best_state}, path)
    run.emit({**entry, "ci95": result.ci95, "best": better, "steps": run.config.steps})


def train(
    learner: nn.Module,
    benchmark: Any,
    config: TrainConfig | None = None,
    callback: Callback | None = None,
    metadata: dict[str, Any] | None = None,
    train_overrides: dict[str, Any] | None = None,
    quiet: bool = False,
    **sampler_overrides: Any,
) -> TrainResult:
    """Meta-train ``learner`` on ``benchmark``'s train split; validate on fixed ``val`` episodes.

    Each step is :func:`metazoo.training.step.build_train_step`'s: for the MAML family the
    plain step (the meta-gradient accumulated task by task, one task's graph alive at a time;
    with ``config.fast`` the opt-in :class:`~metazoo.engine.fast.FastMetaStep`),
    ``learner.outer_step`` for Reptile, ``meta_loss(batch, step)[0].backward()`` then
    ``optimizer.step()`` for every other learner. A fresh run seeds torch's
    global RNG with ``config.seed`` (learner-internal randomness); a resumed one restores its state.
    At the end the learner holds the best-validation weights (the last ones without validation).

    Args:
        learner: a registered learner; trained in place.
        benchmark: a benchmark name, or an object with ``sampler(split, seed, **overrides)``.
        config: the :class:`TrainConfig`; defaults when None.
        callback: called with an event dict after each step (``kind="step"``, ``step``, ``steps``,
            ``loss``, metrics, ``lr``, ``tasks_per_s``), validation (``kind="val"``) and resume;
            None prints progress lines on stderr (:func:`print_progress`) unless ``quiet``.
        metadata: JSON-safe facts stored in checkpoints (e.g. how the learner was built).
        train_overrides: sampler overrides for the train split only, over ``sampler_overrides``
            (e.g. ProtoNet's 60-way training episodes, ``{"ways": 60, "queries": 5}``).
        quiet: without a ``callback``, print nothing.
        **sampler_overrides: passed to the train and val samplers (``ways``, ``shots``, ...).

    Raises:
        NonFiniteLossError: when the loss is NaN or inf, naming the step, the tasks, the likely
            learning rate and the last good checkpoint.
        TrainingInterrupted: SIGINT or SIGTERM arrived; ``last.pt`` holds the step reached.
        RunFolderInUseError: ``config.checkpoint_dir`` holds a run and neither ``resume`` nor
            ``overwrite`` is set.
    """
    config = config or TrainConfig()
    if config.checkpoint_dir:  # before anything is built: a run already there is never lost
        claim_run_folder(config.checkpoint_dir, config.resume, config.overwrite)
    if callback is None and not quiet:
        callback = print_progress(config.log_every)
    threads_for_run()  # the free-cores rule unless threads were chosen (metazoo.engine.threads)
    start = time.perf_counter()
    if config.device is not None:
        learner.to(config.device)
    if config.channels_last:  # NHWC convolution weights: faster oneDNN/cuDNN kernels
        learner.to(memory_format=torch.channels_last)
    param = next(learner.parameters(), None)
    device = param.device if param is not None else torch.device("cpu")
    dist.broadcast_module(learner)  # every rank starts from rank 0's weights
    optimizer = make_optimizer(learner, config)
    run = _Run(
        learner, benchmark, config, dict(sampler_overrides), dict(metadata or {}),
        config.meta_batch or _default_meta_batch(benchmark), optimizer,
        make_scheduler(optimizer, config), callback,
    )  # fmt: skip
    run.train_overrides, run.started = dict(train_overrides or {}), start
    if _restore(run):
        run.emit({"kind": "resume", "step": run.step, "steps": config.steps})
    else:
        torch.manual_seed(config.seed)
    train_sampler = {**sampler_overrides, **run.train_overrides}
    if config.sample_on_device:
        train_sampler.setdefault("device", device)  # episodes built where the learner trains
    with tf32(config.tf32), _distributions_unchecked(), stop_requests() as stop:
        sampler = open_sampler(benchmark, "train", config.seed, **train_sampler)
        stopped = _loop(run, sampler, device, stop)
    if run.best_state is not None:
        learner.load_state_dict(run.best_state)
    best, total = run.path("best.pt"), run.seconds()
    return TrainResult(
        history=run.history,
        best_val=run.best_val,
        best_step=run.best_step,
        final_step=run.step,
        best_checkpoint=str(best) if best is not None and best.is_file() else None,
        last_checkpoint=run.last_saved,
        seconds=total - run.earlier_seconds,
        total_seconds=total,
        stopped=stopped,
    )


def _interrupted(run: _Run, signal_name: str) -> TrainingInterrupted:
    """Checkpoint the step reached, for a resume that matches an uninterrupted run."""
    _save_last(run)
    return TrainingInterrupted(run.step, run.config.steps, run.last_saved, signal_name)


def _loop(run: _Run, sampler: Any, device: torch.device, stop: Any) -> str | None:
    """Train until ``config.steps`` or the time limit; returns why it stopped early, or None."""
    config, began, step = run.config, time.perf_counter(), None
    deferred = DeferredMetrics()
    run.learner.train()
    saved_at = run.step
    while run.step < config.steps:
        if stop.signal_name is not None:
            _log_pending(run, deferred, sampler, device)
            raise _interrupted(run, stop.signal_name)
        if config.time_is_up(began):
            break
        batch = dist.local_tasks(sampler.batch(run.step, run.meta_batch)).to(device)
        if step is None:
            fail = partial(diverged, run)
            step = build_train_step(run.learner, run.optimizer, batch, config, run.meta_batch, fail)
        metrics = step(batch, run.step)
        if run.scheduler is not None:
            run.scheduler.step()
        deferred.add(run.step, metrics, run.optimizer.param_groups[0]["lr"])
        run.step += 1
        last = run.step == config.steps
        validate = config.val_every > 0 and (run.step % config.val_every == 0 or last)
        save = run.step % config.save_every == 0 or last
        # a graphed fast step is read back every log_every steps; any other step every step
        if config.fast is None or validate or save or run.step % config.log_every == 0:
            _log_pending(run, deferred, sampler, device)  # before anything is validated or saved
        if validate:
            _validate(run)
        if save:
            _save_last(run)
            saved_at = run.step
    _log_pending(run, deferred, sampler, device)
    stopped = None
    if run.step < config.steps:
        stopped = f"max_minutes={config.max_minutes} reached after step {run.step}"
        validated = [h for h in run.history[-1:] if h.get("kind") == "val"]
        if config.val_every > 0 and not (validated and validated[0].get("step") == run.step):
            _validate(run)
    if saved_at != run.step:
        _save_last(run)
    return stopped
