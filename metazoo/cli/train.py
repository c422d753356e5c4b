"""``metazoo train LEARNER BENCHMARK [key=value ...]``: meta-train one learner, then test it.

``key=value`` overrides go to the learner's ``Config`` or to :class:`~metazoo.training.TrainConfig`
(prefix ``learner.`` or ``train.`` when both have the key); values are parsed as YAML and checked
against the field's type, and unknown keys are rejected with the valid ones listed. Progress bars
(rich) show on a terminal; a plain log otherwise; nothing with ``--quiet``.
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path
from typing import Any

from metazoo.cli.progress import ProgressReporter, add_threads_argument, set_threads
from metazoo.overrides import split_overrides
from metazoo.training import TrainConfig

__all__ = ["register", "run", "parse_overrides"]


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


def parse_overrides(pairs: list[str], learner: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """Split ``key=value`` pairs into ``(learner config, TrainConfig)`` values, type-checked
    (by :func:`metazoo.overrides.split_overrides`)."""
    from metazoo._registry import get_learner

    targets = {"learner": get_learner(learner).cls.Config, "train": TrainConfig}
    labels = {"learner": f"learner {learner!r}", "train": "training"}
    found = split_overrides(pairs, targets, labels)
    return found["learner"], found["train"]


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
