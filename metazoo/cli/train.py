"""``metazoo train LEARNER BENCHMARK [key=value ...]``: meta-train one learner, then test it.

``key=value`` overrides go to the learner's ``Config`` or to :class:`~metazoo.training.TrainConfig`
(prefix ``learner.`` or ``train.`` when both have the key); values are parsed as YAML and checked
against the field's type, and unknown keys are rejected with the valid ones listed. Progress bars
(rich) show on a terminal; a plain log otherwise; nothing with ``--quiet``.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
import types
import typing
from pathlib import Path
from typing import Any

import yaml
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from metazoo.training import TrainConfig

__all__ = [
    "register",
    "run",
    "parse_overrides",
    "coerce",
    "ProgressReporter",
    "typed_values",
    "set_threads",
    "add_threads_argument",
]


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "train",
        help="meta-train a learner on a benchmark",
        description="Meta-train LEARNER on BENCHMARK, keep the best checkpoint, evaluate on test.",
    )
    parser.add_argument("learner", help="a registered learner (see `metazoo ls`)")
    parser.add_argument("benchmark", help="a benchmark (see `metazoo ls benchmarks`)")
    parser.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides")
    parser.add_argument(
        "--out", help="run folder (checkpoints, result.json); default runs/L__B__seedS"
    )
    parser.add_argument(
        "--episodes", type=int, help="test episodes (default: the benchmark card's)"
    )
    parser.add_argument("--device", help="cpu, cuda, cuda:1, ...")
    parser.add_argument(
        "--backbone", help="override the benchmark's backbone (conv4, resnet12, mlp)"
    )
    add_threads_argument(parser)
    parser.add_argument("--resume", action="store_true", help="continue from OUT/last.pt")
    parser.add_argument(
        "--distributed",
        action="store_true",
        help="data-parallel over the processes torchrun starts (automatic under torchrun); "
        "see docs/scaling-out.md",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress output")
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    parser.set_defaults(func=run)


def _type_name(hint: Any) -> str:
    return getattr(hint, "__name__", None) or str(hint).replace("typing.", "")


def _convert(value: Any, hint: Any) -> tuple[bool, Any]:
    """``(ok, converted)``: whether ``value`` fits ``hint``, and the value in that type."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint is Any:
        return True, value
    if origin in (typing.Union, types.UnionType):
        for option in args:
            ok, converted = _convert(value, option)
            if ok:
                return True, converted
        return False, value
    if hint is type(None):
        return value is None, value
    if hint is bool:
        return isinstance(value, bool), value
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool), value
    if hint is float:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        return ok, float(value) if ok else value
    if hint is str:
        return isinstance(value, str), value
    if origin in (tuple, list) or hint in (tuple, list):
        if not isinstance(value, (list, tuple)):
            return False, value
        inner = args[0] if args and args[-1] is not Ellipsis or len(args) == 2 else Any
        items = [_convert(v, inner) for v in value]
        ok = all(ok for ok, _ in items)
        return ok, (tuple if (origin or hint) is tuple else list)(v for _, v in items)
    if origin is dict or hint is dict:
        return isinstance(value, dict), value
    if origin is typing.Literal:
        return value in args, value
    return True, value  # a type we cannot check: let the dataclass decide


def coerce(key: str, text: str, hint: Any) -> Any:
    """Parse ``text`` as YAML and check it against ``hint``; a str field takes the text as is."""
    try:
        value = yaml.safe_load(text) if text != "" else ""
    except yaml.YAMLError:
        value = text
    if hint is str and not isinstance(value, str):
        value = text
    ok, converted = _convert(value, hint)
    if not ok:
        raise TypeError(f"{key}={text!r}: expected {_type_name(hint)}, got {type(value).__name__}")
    return converted


def typed_values(cls: type, values: dict[str, Any]) -> dict[str, Any]:
    """``values`` (e.g. read back from JSON) converted to ``cls``'s field types (lists to tuples)."""
    hints = typing.get_type_hints(cls)
    return {k: _convert(v, hints.get(k, Any))[1] for k, v in values.items()}


def parse_overrides(pairs: list[str], learner: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """Split ``key=value`` pairs into ``(learner config, TrainConfig)`` values, type-checked."""
    from metazoo._registry import get_learner

    targets = {"learner": get_learner(learner).cls.Config, "train": TrainConfig}
    hints = {name: typing.get_type_hints(cls) for name, cls in targets.items()}
    found: dict[str, dict[str, Any]] = {"learner": {}, "train": {}}
    for pair in pairs:
        key, sep, text = pair.partition("=")
        if not sep or not key:
            raise ValueError(f"override {pair!r} is not key=value (e.g. lr=0.001 or steps=500)")
        prefix, dot, field = key.partition(".")
        owners = [prefix] if dot and prefix in targets else [n for n in targets if key in hints[n]]
        field = field if dot and prefix in targets else key
        owners = [n for n in owners if field in hints[n]]
        if len(owners) != 1:
            raise _unknown_key(key, owners, learner, hints)
        found[owners[0]][field] = coerce(key, text, hints[owners[0]][field])
    return found["learner"], found["train"]


def _unknown_key(key: str, owners: list[str], learner: str, hints: dict) -> TypeError:
    if len(owners) > 1:
        return TypeError(
            f"{key!r} is both a learner and a train setting: write learner.{key}=... or train.{key}=..."
        )
    return TypeError(
        f"unknown key {key!r}; learner {learner!r} takes: {', '.join(hints['learner'])}; "
        f"training takes: {', '.join(hints['train'])}"
    )


def _fmt_duration(seconds: float) -> str:
    seconds = int(seconds)
    return (
        f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
        if seconds >= 3600
        else f"{seconds // 60}m{seconds % 60:02d}s"
    )


class ProgressReporter:
    """The trainer/suite callback: a rich progress bar on a terminal, plain lines otherwise.

    Args:
        quiet: print nothing.
        plain: force plain log lines (default: when stdout is not a terminal).
        every_s: seconds between plain log lines.
    """

    def __init__(self, quiet: bool = False, plain: bool | None = None, every_s: float = 10.0):
        self.quiet = quiet
        self.plain = (not sys.stdout.isatty()) if plain is None else plain
        self.every_s = every_s
        self.console = Console()
        self._bar: Progress | None = None
        self._task = None
        self._last = 0.0
        self._first: tuple[float, int] | None = None

    def __enter__(self) -> ProgressReporter:
        if not self.quiet and not self.plain:
            self._bar = Progress(
                TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                TextColumn("{task.fields[info]}"), TimeRemainingColumn(), console=self.console,
            )  # fmt: skip
            self._bar.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self._bar.stop()

    def say(self, message: str) -> None:
        """A line of text, above the bar when there is one."""
        if not self.quiet:
            (self._bar.console if self._bar else self.console).print(message, highlight=False)

    def __call__(self, event: dict[str, Any]) -> None:
        if self.quiet:
            return
        kind = event.get("kind")
        if kind in ("step", "episode"):
            self._step(event)
        elif kind == "val":
            unit = "%" if event["metric"] == "accuracy" else ""
            best = " (best)" if event.get("best") else ""
            self.say(
                f"  step {event['step']}: val {event['metric']} {event['mean']:.3f}{unit} ± {event['ci95']:.3f}{best}"
            )
        elif kind == "resume":
            self.say(f"  resuming at step {event['step']} of {event['steps']}")
        elif kind == "cell":
            self._cell(event)

    def _info(self, event: dict[str, Any]) -> str:
        parts = [f"loss {event['loss']:.4f}"] if "loss" in event else []
        parts += [f"{k} {event[k]:.3f}" for k in ("accuracy", "mse") if k in event]
        if "tasks_per_s" in event:
            parts.append(f"{event['tasks_per_s']:.0f} tasks/s")
        return "  ".join(parts)

    def _step(self, event: dict[str, Any]) -> None:
        if self._bar is not None:
            if self._task is None:
                label = "evaluate" if event["kind"] == "episode" else event.get("cell", "train")
                self._task = self._bar.add_task(label, total=event["steps"], info="")
            self._bar.update(
                self._task, completed=event["step"], total=event["steps"], info=self._info(event)
            )
            return
        now = time.perf_counter()
        if self._first is None:  # measure the rate from the first step: setup time is not progress
            self._first = (now, event["step"])
        if now - self._last < self.every_s and event["step"] != event["steps"]:
            return
        self._last = now
        done = event["step"] - self._first[1]
        eta = "?"
        if done > 0:
            rate = done / max(now - self._first[0], 1e-9)
            eta = _fmt_duration((event["steps"] - event["step"]) / rate)
        noun = "episode" if event["kind"] == "episode" else "step"
        info = self._info(event)
        self.say(
            f"  {noun} {event['step']}/{event['steps']}  {info}{'  ' if info else ''}ETA {eta}"
        )

    def _cell(self, event: dict[str, Any]) -> None:
        if self._bar is not None and self._task is not None:
            self._bar.remove_task(self._task)
        self._task, self._first = None, None
        status = event["status"] + (f": {event['error']}" if event.get("error") else "")
        self.say(f"[{event['index'] + 1}/{event['total']}] {event['cell']}: {status}")


#: CPU threads when ``--threads`` is not given. Meta-learning models are small: on the 2-core
#: development machine two intra-op threads ran 10-40x slower than one whenever the other core was
#: busy (thread synchronisation, not arithmetic, dominates). Use processes (torchrun) for more cores.
DEFAULT_CPU_THREADS = 1


def add_threads_argument(parser: argparse.ArgumentParser) -> None:
    """The ``--threads`` option of the commands that train or evaluate (see :func:`set_threads`)."""
    parser.add_argument(
        "--threads",
        type=int,
        help="torch CPU threads (default 1: fastest for these small models)",
    )


def set_threads(threads: int | None) -> None:
    """``torch.set_num_threads`` (recorded in every result's device name); None: the default above."""
    import torch

    threads = DEFAULT_CPU_THREADS if threads is None else threads
    if threads < 1:
        raise ValueError(f"--threads must be >= 1, got {threads}")
    torch.set_num_threads(threads)


def run(args: argparse.Namespace) -> int:
    from metazoo.build import build_learner
    from metazoo.cards import benchmark_card
    from metazoo.evaluation import evaluate
    from metazoo.training import train

    learner_values, train_values = parse_overrides(args.overrides, args.learner)
    flags = {"checkpoint_dir": "--out DIR", "resume": "--resume", "device": "--device"}
    for key in flags.keys() & train_values.keys():  # the flags set these; a value would be lost
        raise SystemExit(f"metazoo train: give {key} with {flags[key]}, not as {key}=...")
    set_threads(args.threads)
    from metazoo import distributed as dist

    if args.distributed or dist.launched():
        dist.init(device=args.device)  # from torchrun's RANK, WORLD_SIZE, LOCAL_RANK
        args.device = dist.rank_device(args.device)  # cuda -> cuda:LOCAL_RANK
    seed = train_values.get("seed", 0)
    out = Path(args.out or f"runs/{args.learner}__{args.benchmark}__seed{seed}")
    train_values.update(checkpoint_dir=str(out), resume=args.resume, device=args.device)
    config = TrainConfig(**train_values)
    build = {"backbone": args.backbone} if args.backbone else {}
    learner = build_learner(
        args.learner, args.benchmark, seed=seed, device=args.device, **build, **learner_values
    )
    from metazoo.engine.precision import tf32

    with tf32(config.tf32), ProgressReporter(quiet=args.quiet or not dist.is_main()) as progress:
        progress.say(
            f"training {args.learner} on {args.benchmark} for {config.steps} steps -> {out}"
        )
        result = train(
            learner, args.benchmark, config, callback=progress, metadata={"build": build}
        )
        episodes = args.episodes or benchmark_card(args.benchmark)["test_episodes"]
        tested = evaluate(learner, args.benchmark, episodes=episodes, seed=0)  # on every rank
    if not dist.is_main():
        return 0  # rank 0 writes and prints
    from metazoo._atomic import write_json_atomic

    trained = {"best_val": result.best_val, "best_step": result.best_step,
               "final_step": result.final_step, "seconds": result.seconds,
               "total_seconds": result.total_seconds,
               "stopped": result.stopped, "config": dataclasses.asdict(config),
               "history": result.history}  # fmt: skip
    write_json_atomic({"train": trained, "result": tested.to_dict()}, out / "result.json")
    if result.stopped:
        print(f"stopped early: {result.stopped}")
    print(tested)
    print(
        f"checkpoints: {result.best_checkpoint or result.last_checkpoint}; result: {out / 'result.json'}"
    )
    return 0
