"""``metazoo train LEARNER BENCHMARK [key=value ...]``: meta-train one learner, then test it.

``key=value`` settings go to the learner's ``Config``, :class:`~metazoo.training.TrainConfig`, the
sampler or the backbone; ``--config FILE`` reads a suite's run block first. Every setting is
resolved by :func:`metazoo.runs.resolve_run`, as a suite cell's are (``--print-config`` shows
each value and its source), and the run folder gets the record a suite cell gets. A run folder that already holds a run is refused unless ``--resume`` or
``--overwrite`` is given; Ctrl-C (or SIGTERM) checkpoints the step reached and prints the command
that resumes it. Progress bars (rich) show on a terminal; a plain log otherwise; nothing with
``--quiet``.
"""

from __future__ import annotations

import argparse
import shlex
import sys
import time
from pathlib import Path

from metazoo.cli.progress import ProgressReporter, add_threads_argument, set_threads
from metazoo.cli.train_settings import describe_keys
from metazoo.runs import ResolvedRun, resolve_run
from metazoo.training import TrainingInterrupted
from metazoo.training.checkpoint import FolderWords, claim_run_folder

__all__ = ["register", "run", "resolve", "check_run_folder"]


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
        "--print-config",
        action="store_true",
        help="print every resolved setting and where it came from, then stop",
    )
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
    try:  # the values this run will take, its overrides included
        keys = describe_keys(args.learner, args.benchmark, args.backbone, **_resolution(args))
    except (KeyError, TypeError, ValueError, FileNotFoundError):  # then the defaults
        keys = describe_keys(args.learner, args.benchmark, args.backbone)
    print(keys)
    return 0


def _resolution(args: argparse.Namespace) -> dict:
    return {"config_file": args.config, "overrides": args.overrides, "seed": args.seed,
            "episodes": args.episodes}  # fmt: skip


def resolve(args: argparse.Namespace) -> ResolvedRun:
    """The run's settings: :func:`~metazoo.runs.resolve_run` of the command line."""
    if not (args.learner and args.benchmark):
        raise ValueError("give LEARNER and BENCHMARK, e.g. `metazoo train maml sinusoid`")
    flags = {"checkpoint_dir": "--out DIR", "resume": "--resume", "device": "--device",
             "overwrite": "--overwrite"}  # fmt: skip
    for pair in args.overrides:  # facts of the call, not settings: the flags give them
        key = pair.partition("=")[0].removeprefix("train.")
        if key in flags:
            raise ValueError(f"give {key} with {flags[key]}, not as {key}=...")
    return resolve_run(args.learner, args.benchmark, backbone=args.backbone, **_resolution(args))


def run(args: argparse.Namespace) -> int:
    if args.help:
        return _help(args)
    resolved = resolve(args)
    if args.print_config:
        print(resolved.describe())
        return 0
    out = Path(args.out or f"runs/{args.learner}__{args.benchmark}__seed{resolved.seed}")
    check_run_folder(out, args.resume, args.overwrite)
    set_threads(args.threads)
    from metazoo import distributed as dist

    if args.distributed or dist.launched():
        dist.init(device=args.device)  # from torchrun's RANK, WORLD_SIZE, LOCAL_RANK
        args.device = dist.rank_device(args.device)  # cuda -> cuda:LOCAL_RANK
    try:
        record = _train_and_test(args, resolved, out)
    except TrainingInterrupted as stop:
        where = f"saved {stop.checkpoint}" if stop.checkpoint else "no checkpoint"
        print(f"metazoo train: {stop.signal_name} at step {stop.step} of {stop.steps}; {where}. "
              f"Resume with:\n  {_resume_command(args.argv)}", file=sys.stderr)  # fmt: skip
        return 130
    if dist.is_main():
        _report(record, out)
    return 0


def _train_and_test(args, resolved: ResolvedRun, out: Path) -> dict:
    from metazoo import distributed as dist
    from metazoo.cli.tensorboard import with_tensorboard
    from metazoo.runs import new_record, train_and_test
    from metazoo.runs.execute import now

    record = new_record(
        resolved.learner, resolved.benchmark, resolved.seed, resolved.settings,
        device=args.device, checkpoints=".",
    )  # fmt: skip
    tick = time.perf_counter()
    with ProgressReporter(quiet=args.quiet or not dist.is_main()) as progress:
        steps = resolved.train_config().steps
        progress.say(f"training {args.learner} on {args.benchmark} for {steps} steps -> {out}")
        record.update(train_and_test(
            resolved, checkpoint_dir=out, resume=args.resume, device=args.device,
            callback=with_tensorboard(progress, args.tensorboard),
        ))  # fmt: skip
    record.update(status="ok", finished=now(), seconds=time.perf_counter() - tick)
    return record


def _report(record: dict, out: Path) -> None:
    from metazoo._atomic import write_json_atomic
    from metazoo.evaluation import EvalResult

    write_json_atomic(record, out / "result.json")
    if record["train"]["stopped"]:
        print(f"stopped early: {record['train']['stopped']}")
    print(EvalResult.from_dict(record["result"]))
    best = out / "best.pt"
    print(f"checkpoints: {best if best.is_file() else out / 'last.pt'}; "
          f"result: {out / 'result.json'}")  # fmt: skip
