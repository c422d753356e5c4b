"""Run the speed benchmark: correctness pre-check, then interleaved timings, per shape.

For each shape every contender gets a copy of the same model and the same device-resident
meta-batches. Before any timing, each contender's meta-gradient on batch 0 is compared with the
float64 reference (metazoo's sequential executor); then warm-up calls (peak memory is measured on
the last one), then ``repeats`` rounds in which every contender is timed once per round, so a
change in machine load hits all contenders alike. A contender that fails is recorded with its
error and the others go on.
"""

from __future__ import annotations

import copy
import math
import os
import statistics
import time
import traceback
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

import torch

from lab.speed.contender import Builder, Contender, Unavailable, precision
from lab.speed.contenders import CONTENDERS, CUDA_VARIANTS, build_contender, precision_of
from lab.speed.report import environment
from lab.speed.shapes import SpeedShape, get_shapes, make_model, synthetic_batches
from lab.speed.targets import evaluate_targets
from metazoo.bench.speed import relative_error
from metazoo.bench.timing import keep_freed_memory, memory_kind, peak_memory_mb, time_calls
from metazoo.engine import InnerLoop, MetaParams, accumulate_meta_gradient, parameters_of

__all__ = ["SpeedConfig", "run_speed", "relative_error", "reference_gradient"]

Log = Callable[[str], None]


@dataclass
class SpeedConfig:
    """What to run and how carefully to time it."""

    #: ``cpu`` or ``cuda`` (``cuda:1``...).
    device: str = "cpu"
    #: shape names (:data:`lab.speed.shapes.SHAPES`) or :class:`SpeedShape` objects; None for
    #: all (``quick``: the first, reduced).
    shapes: list[str | SpeedShape] | None = None
    #: CI mode: the reduced first shape, one warm-up call, three single-call rounds.
    quick: bool = False
    #: override every shape's meta-batch size.
    tasks: int | None = None
    #: contender names; None for all, plus the CUDA variants on a GPU.
    contenders: list[str] | None = None
    #: your own implementations to race, name -> builder (see :data:`~lab.speed.contenders.Builder`);
    #: they run after the built-in contenders unless ``contenders`` orders them.
    extra_contenders: dict[str, Builder] = field(default_factory=dict)
    #: untimed calls per contender before timing (at least two; the last measures peak memory
    #: and sets how many calls a timed run makes).
    warmup: int = 2
    #: timed rounds; the median is reported.
    repeats: int = 5
    #: a timed run repeats the call until it lasts about this long (seconds).
    min_run_s: float = 0.5
    #: seed of the model initialisation and of the episodes.
    seed: int = 0
    #: stop building contenders after this many seconds (the rest are marked skipped); warm-up
    #: and timing of those built go on for at most half as long again.
    budget_s: float | None = None
    #: largest relative meta-gradient error counted as correct (fp32 contenders).
    tolerance: float = 1e-3
    #: added to the result file's name (``speed-<device>-torch<v>-<tag>``), e.g. ``learners``.
    tag: str | None = None

    def __post_init__(self) -> None:
        if self.quick:
            self.warmup, self.repeats, self.min_run_s = 1, 3, 0.0

    def contender_names(self, device: torch.device) -> list[str]:
        """The contenders to run on ``device``, in table order."""
        known = [*CONTENDERS, *CUDA_VARIANTS, *self.extra_contenders]
        unknown = [n for n in self.contenders or () if n not in known]
        if unknown:
            raise KeyError(f"unknown contender(s) {unknown}; choose from {known}")
        if self.contenders:
            return list(self.contenders)
        names = list(CONTENDERS) + (list(CUDA_VARIANTS) if device.type == "cuda" else [])
        return names + list(self.extra_contenders)


def reference_gradient(model: torch.nn.Module, shape: SpeedShape, batch) -> list[torch.Tensor]:
    """The float64 meta-gradient of ``batch`` by metazoo's sequential executor (the reference)."""
    ref_model = copy.deepcopy(model).double()
    ref_batch = batch.float_as(torch.float64)
    loop = InnerLoop(steps=shape.inner_steps)
    meta = MetaParams(parameters_of(ref_model), shape.inner_lr)
    # sequential with the backward inside: one task's float64 graph alive at a time
    accumulate_meta_gradient(ref_model, ref_batch, loop, meta, executor="sequential")
    return [p.grad for p in ref_model.parameters()]


class _Shape:
    """The state of one shape's run: contenders, their records, the shared data."""

    def __init__(
        self,
        shape: SpeedShape,
        config: SpeedConfig,
        device: torch.device,
        log: Log,
        deadline: float,
        progress: Callable[[dict], None],
    ):
        self.shape, self.config, self.device, self.log = shape, config, device, log
        self.deadline, self.progress = deadline, progress
        # warm-up and timing of the contenders built in time may run on for half a budget more
        budget = config.budget_s or math.inf
        self.timing_deadline = deadline + 0.5 * budget if budget < math.inf else math.inf
        self.model = make_model(shape, config.seed).to(device)
        self.batches = synthetic_batches(shape, 2, seed=config.seed, device=device)
        self.live: list[tuple[Contender, dict]] = []
        self.records: list[dict] = []

    def run(self) -> dict:
        """Check every contender against float64, time those that pass the build, and return
        this shape's part of the result document."""
        self.log(f"{self.shape.name}: {self.shape.describe()}")
        start = time.perf_counter()
        reference = reference_gradient(self.model, self.shape, self.batches[0])
        self.log(f"  float64 reference meta-gradient: {time.perf_counter() - start:.1f} s")
        for name in self.config.contender_names(self.device):
            if time.perf_counter() > self.deadline:
                skipped = {"name": name, "status": "skipped", "note": "time budget spent"}
                self.records.append(skipped)
                continue
            self.build_and_check(name, reference)
            self.progress(self.result())
        for kind in ("train", "eval"):
            self.warm_up(kind)
            self.time_rounds(kind)
        for record in self.records:
            if "train" in record and "per_s" in record["train"]:
                evaluation = record.get("eval", {})
                self.log(
                    f"  {record['name']:<28} train {record['train']['per_s']:8.2f} tasks/s"
                    + (
                        f"  eval {evaluation['per_s']:8.2f} episodes/s"
                        if "per_s" in evaluation
                        else ""
                    )
                )
        return self.result()

    def fail(self, record: dict, exc: BaseException) -> None:
        record["status"] = "failed"
        record["note"] = f"{type(exc).__name__}: {exc}"[:500]
        self.log(f"  {record['name']}: FAILED {record['note']}")
        self.log("".join(traceback.format_exception(exc)[-3:]).rstrip())
        self.live = [(c, r) for c, r in self.live if r is not record]

    def build_and_check(self, name: str, reference: list[torch.Tensor]) -> None:
        record: dict = {"name": name, "precision": precision_of(name), "status": "ok", "note": ""}
        self.records.append(record)
        began = time.perf_counter()
        try:
            with precision(record["precision"]):
                contender = build_contender(
                    name, self.model, self.shape, self.batches[0], self.config.extra_contenders
                )
                grads = contender.meta_gradient(self.batches[0])
                built = time.perf_counter() - began  # what a user's first step costs
                if contender.reference is not None:
                    reference = contender.reference(self.batches[0])
                    record["reference"] = "own float64"
        except Unavailable as exc:
            record.update(status="skipped", note=str(exc))
            self.log(f"  {name}: skipped ({exc})")
            return
        except Exception as exc:  # a broken contender must not stop the others
            self.fail(record, exc)
            return
        error = relative_error(grads, reference)
        correct = error <= self.config.tolerance
        record.update(
            description=contender.description,
            note=contender.note,
            # warm-up, capture and compile, and the first meta-gradient (not a float64 reference)
            details={**contender.details, "build_seconds": round(built, 2)},
            meta_grad_rel_error=error,
            gradient_ok=correct,
        )
        self.live.append((contender, record))
        self.log(
            f"  {name}: meta-gradient relative error {error:.2e} "
            + (
                "(against itself in float64; shown, not gated)"
                if record.get("reference")
                else ("ok" if correct else "MISMATCH")
            )
        )

    def warm_up(self, kind: str) -> None:
        """Untimed calls; the last one measures peak memory; the first calibrates steps per run."""
        items = self.shape.meta_batch
        for contender, record in list(self.live):
            call = contender.train_step if kind == "train" else contender.evaluate
            if call is None:
                continue
            if time.perf_counter() > self.timing_deadline:
                record["note"] = (record["note"] + f"; {kind} not timed: time budget spent").strip(
                    "; "
                )
                continue
            try:
                with precision(record["precision"]):
                    result = call(self.batches[0])
                    for i in range(1, self.config.warmup - 1):
                        call(self.batches[i % 2])
                    start = time.perf_counter()
                    peak = peak_memory_mb(lambda c=call: c(self.batches[1]), self.device)
                    last = time.perf_counter() - start
            except Exception as exc:
                self.fail(record, exc)
                continue
            steps = max(1, math.ceil(self.config.min_run_s / max(last, 1e-6)))
            record[kind] = {"peak_memory_mb": peak, "steps_per_run": steps, "items_per_call": items}
            if kind == "eval":
                record["eval_accuracy"] = float(torch.as_tensor(result).float().mean())

    def time_rounds(self, kind: str) -> None:
        for round_index in range(self.config.repeats):
            if round_index > 0 and time.perf_counter() > self.timing_deadline:
                self.log(f"  time budget spent: {kind} timing stops after {round_index} round(s)")
                break
            for contender, record in list(self.live):
                info = record.get(kind)
                if info is None:
                    continue
                call = contender.train_step if kind == "train" else contender.evaluate
                try:
                    with precision(record["precision"]):
                        timing = time_calls(
                            call,
                            self.batches,
                            device=self.device,
                            items_per_call=info["items_per_call"],
                            warmup=0,
                            repeats=1,
                            steps=info["steps_per_run"],
                        )
                except Exception as exc:
                    self.fail(record, exc)
                    continue
                info.setdefault("seconds_per_call", []).extend(timing.seconds_per_call)
            self.summarise(kind)
            self.progress(self.result())

    def summarise(self, kind: str) -> None:
        """Median, rate and spread of ``kind`` over the rounds timed so far."""
        for _, record in self.live:
            info = record.get(kind)
            if info and info.get("seconds_per_call"):
                times = info["seconds_per_call"]
                median = statistics.median(times)
                info.update(
                    median_s=median,
                    per_s=info["items_per_call"] / median,
                    spread=(max(times) - min(times)) / median,
                )

    def result(self) -> dict:
        """This shape's part of the result document, as far as it has run."""
        return {
            "shape": asdict(self.shape),
            "description": self.shape.describe(),
            "reference": "metazoo sequential executor in float64 (engine.accumulate_meta_gradient)",
            "contenders": self.records,
        }


def _timestamped(log: Log, began: float) -> Log:
    return lambda line: log(f"[{time.perf_counter() - began:6.0f} s] {line}")


def run_speed(
    config: SpeedConfig, log: Log = print, progress: Callable[[dict], None] | None = None
) -> dict:
    """Run every shape of ``config`` and return the result document (see :mod:`lab.speed.report`).

    ``progress``, if given, receives the document as far as it has run (``"partial": true``)
    after each contender's build and check and after each timing round, so a caller can keep
    what a run measured even if the run is killed before it ends (the command line does).
    """
    device = torch.device(config.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("--device cuda was asked for but torch.cuda.is_available() is False")
    config.contender_names(device)  # unknown names fail now, not after the first shape's work
    shapes = get_shapes(config.shapes, config.quick)
    if config.tasks:
        shapes = [s.scaled(config.tasks) for s in shapes]
    began = time.perf_counter()
    log = _timestamped(log, began)
    deadline = began + config.budget_s if config.budget_s else math.inf
    env = environment(device)
    if device.type == "cpu":
        env["allocator"] = keep_freed_memory()
    env["load_before"] = list(os.getloadavg())
    results: list[dict] = []

    def partial(current: dict) -> None:
        if progress is not None:
            progress(_document(config, env, [*results, current], began, partial=True))

    for shape in shapes:
        results.append(_Shape(shape, config, device, log, deadline, partial).run())
    env["load_after"] = list(os.getloadavg())
    return _document(config, env, results, began)


def _document(
    config: SpeedConfig, env: dict, shapes: list[dict], began: float, partial: bool = False
) -> dict:
    document = {
        "schema": "metazoo-speed/1",
        "mode": "quick" if config.quick else "full",
        "environment": env,
        "timing": {
            "warmup": config.warmup,
            "repeats": config.repeats,
            "min_run_s": config.min_run_s,
            "method": "median of interleaved rounds; device synchronised around each timed run",
            "memory": memory_kind(torch.device(config.device)),
            "wall_s": time.perf_counter() - began,
        },
        "tolerance": config.tolerance,
        "tag": config.tag,
        "shapes": shapes,
    }
    if partial:  # a run still going, or killed: what it measured so far
        document["partial"] = True
    document["targets"] = evaluate_targets(document)
    return document
