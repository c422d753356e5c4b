"""``metazoo train LEARNER BENCHMARK [key=value ...]``: meta-train one learner, then test it.

``key=value`` settings go to the learner's ``Config``, :class:`~metazoo.training.TrainConfig`, the
sampler or the backbone (:mod:`metazoo.cli.train_settings`); ``--config FILE`` reads a suite's run
block first. A run folder that already holds a run is refused unless ``--resume`` or
``--overwrite`` is given; Ctrl-C (or SIGTERM) checkpoints the step reached and prints the command
that resumes it. Progress bars (rich) show on a terminal; a plain log otherwise; nothing with
``--quiet``.
"""

from __future__ import annotations

import argparse
import dataclasses
import shlex
import sys
from pathlib import Path
from typing import Any

from metazoo.cli.progress import ProgressReporter, add_threads_argument, set_threads
from metazoo.cli.train_settings import RunSettings, backbone_name, describe_keys, run_settings
from metazoo.training import TrainConfig, TrainingInterrupted
from metazoo.training.checkpoint import FolderWords, claim_run_folder

__all__ = ["register", "run", "parse_overrides", "check_run_folder"]


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "train",
        help="meta-train a learner on a benchmark",
        description="Meta-train LEARNER on BENCHMARK, keep the best checkpoint, evaluate on test. "
        "`metazoo train LEARNER BENCHMARK --help` lists every key=value setting.",
        add_help=False,
    )
    parser.add_argument("learner", nargs="?", help="a registered learner (see `metazoo ls`)")
    parser.add_argument("benchmark", nargs="?", help="a benchmark (see `metazoo ls benchmarks`)")
    parser.add_argument("overrides", nargs="*", metavar="key=value", help="settings (see --help)")
    parser.add_argument("-h", "--help", action="store_true", help="this help and every key")
    parser.add_argument(
        "--out", help="run folder (checkpoints, result.json); default runs/L__B__seedS"
    )
    parser.add_argument(
        "--config", help="YAML file with a suite's run block (train:, sampler:, ...)"
    )
    parser.add_argument(
        "--seed", type=int, help="seed of episodes, initialisation and RNG (default 0)"
    )
    parser.add_argument(
        "--episodes", type=int, help="test episodes (default: the benchmark card's)"
    )
    parser.add_argument("--device", help="cpu, cuda, cuda:1, ...")
    parser.add_argument(
        "--backbone", help="the benchmark's backbone instead (conv4, resnet12, mlp)"
    )
    add_threads_argument(parser)
    parser.add_argument("--resume", action="store_true", help="continue the run in OUT (last.pt)")
    parser.add_argument("--overwrite", action="store_true", help="start over in a used OUT folder")
    parser.add_argument(
        "--tensorboard", metavar="DIR", help="also log curves to TensorBoard in DIR"
    )
    parser.add_argument(
        "--distributed",
        action="store_true",
        help="data-parallel over the processes torchrun starts (automatic under torchrun); "
        "see docs/scaling-out.md",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress output")
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    parser.set_defaults(func=run, parser=parser)


def parse_overrides(pairs: list[str], learner: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """Split ``key=value`` pairs into ``(learner config, TrainConfig)`` values, type-checked."""
    settings = run_settings(learner, pairs, None, None)
    return settings.learner, settings.train


#: The run-folder rule's messages in the flags' words.
_FLAG_WORDS = FolderWords(folder="--out", resume="--resume", overwrite="--overwrite", verb="add")


def check_run_folder(out: Path, resume: bool, overwrite: bool) -> None:
    """Refuse to lose a run: a used folder needs ``--resume`` or ``--overwrite``; ``--resume``
    needs a ``last.pt``. With ``--overwrite`` the earlier run's files are deleted (the trainer's
    rule, :func:`~metazoo.training.checkpoint.claim_run_folder`, checked before anything is built).

    Raises:
        ValueError: both flags, or --resume with nothing to resume.
        RunFolderInUseError: naming the folder, what it holds and the flags to add.
    """
    claim_run_folder(out, resume, overwrite, resume_needs_checkpoint=True, words=_FLAG_WORDS)


def _resume_command(argv: list[str]) -> str:
    """The command line that resumes this run: the same arguments with ``--resume``."""
    kept = [a for a in argv if a != "--overwrite"]
    return shlex.join(["metazoo", *kept, *([] if "--resume" in kept else ["--resume"])])


def _help(args: argparse.Namespace) -> int:
    args.parser.print_help()
    print()
    print(describe_keys(args.learner, args.benchmark, args.backbone))
    return 0


def _check_names(args: argparse.Namespace) -> None:
    from metazoo._registry import get_learner
    from metazoo.cards import benchmark_card

    if not (args.learner and args.benchmark):
        raise ValueError("give LEARNER and BENCHMARK, e.g. `metazoo train maml sinusoid`")
    get_learner(args.learner)  # unknown names suggest close ones
    benchmark_card(args.benchmark)


def _settings(args: argparse.Namespace) -> tuple[RunSettings, TrainConfig, Path]:
    backbone = backbone_name(args.learner, args.benchmark, args.backbone)
    settings = run_settings(args.learner, args.overrides, args.config, backbone)
    flags = {"checkpoint_dir": "--out DIR", "resume": "--resume", "device": "--device"}
    flags["overwrite"] = "--overwrite"
    for key in flags.keys() & settings.train.keys():  # the flags set these; a value would be lost
        raise ValueError(f"give {key} with {flags[key]}, not as {key}=...")
    if args.seed is not None:
        settings.train["seed"] = args.seed
    if args.backbone:
        settings.build["backbone"] = args.backbone
    seed = settings.train.get("seed", 0)
    out = Path(args.out or f"runs/{args.learner}__{args.benchmark}__seed{seed}")
    settings.train.update(checkpoint_dir=str(out), resume=args.resume, device=args.device)
    return settings, TrainConfig(**settings.train), out


def run(args: argparse.Namespace) -> int:
    if args.help:
        return _help(args)
    _check_names(args)
    settings, config, out = _settings(args)
    check_run_folder(out, args.resume, args.overwrite)
    set_threads(args.threads)
    from metazoo import distributed as dist

    if args.distributed or dist.launched():
        dist.init(device=args.device)  # from torchrun's RANK, WORLD_SIZE, LOCAL_RANK
        args.device = dist.rank_device(args.device)  # cuda -> cuda:LOCAL_RANK
    try:
        result, tested = _train_and_test(args, settings, config, out)
    except TrainingInterrupted as stop:
        where = f"saved {stop.checkpoint}" if stop.checkpoint else "no checkpoint"
        print(f"metazoo train: {stop.signal_name} at step {stop.step} of {stop.steps}; {where}. "
              f"Resume with:\n  {_resume_command(args.argv)}", file=sys.stderr)  # fmt: skip
        return 130
    if dist.is_main():
        _report(result, tested, config, out)
    return 0


def _train_and_test(args, settings: RunSettings, config: TrainConfig, out: Path):
    from metazoo import distributed as dist
    from metazoo.build import build_learner
    from metazoo.cards import benchmark_card
    from metazoo.cli.tensorboard import with_tensorboard
    from metazoo.engine.precision import tf32
    from metazoo.evaluation import evaluate
    from metazoo.training import train

    ways = settings.sampler.get("ways")
    learner = build_learner(
        args.learner, args.benchmark, seed=config.seed, device=args.device, ways=ways,
        **settings.build, **settings.learner,
    )  # fmt: skip
    with tf32(config.tf32), ProgressReporter(quiet=args.quiet or not dist.is_main()) as progress:
        progress.say(
            f"training {args.learner} on {args.benchmark} for {config.steps} steps -> {out}"
        )
        callback = with_tensorboard(progress, args.tensorboard)
        result = train(
            learner, args.benchmark, config, callback=callback,
            # ways sized the head: load_learner and `metazoo eval` must build it the same
            metadata={"build": {**settings.build, **({"ways": ways} if ways else {})}},
            train_overrides=settings.train_sampler,
            **settings.sampler,
        )  # fmt: skip
        episodes = args.episodes or settings.eval.get("episodes")
        episodes = episodes or benchmark_card(args.benchmark)["test_episodes"]
        tested = evaluate(learner, args.benchmark, episodes=episodes, seed=0, **settings.sampler)
    return result, tested


def _report(result, tested, config: TrainConfig, out: Path) -> None:
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
    print(f"checkpoints: {result.best_checkpoint or result.last_checkpoint}; "
          f"result: {out / 'result.json'}")  # fmt: skip
