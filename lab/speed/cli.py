"""``python -m lab.speed``: MAML meta-training and evaluation throughput of metazoo's
executors against ``higher``, learn2learn and a plain task loop, and the speed targets.

Run from the repository root. Writes ``<out>/results/<stem>.json`` and ``<out>/tables/<stem>.md``,
the stem naming the device and the torch version (``speed-cpu-2core-torch2.14.1``);
``--update-docs`` then regenerates the tables in ``docs/speed.md`` from every committed result
file (as ``python -m lab.docs.generate`` does).
"""

from __future__ import annotations

import argparse
import sys

import torch

from lab.docs.generate import update_speed_docs, write_speed_tables
from lab.speed.learners import learner_contenders
from lab.speed.report import write_partial, write_result
from lab.speed.runner import SpeedConfig, run_speed
from lab.speed.shapes import SHAPES


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of the speed lab."""
    parser.add_argument("--quick", action="store_true", help="CI-sized run (well under a minute)")
    parser.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")
    parser.add_argument(
        "--shapes", nargs="+", choices=sorted(SHAPES), help="shapes to run (default: all)"
    )
    parser.add_argument("--tasks", type=int, help="override every shape's meta-batch size")
    parser.add_argument("--contenders", nargs="+", help="only these contenders")
    parser.add_argument(
        "--learners",
        nargs="+",
        metavar="NAME",
        help="also race these registered learners (or 'all') as the trainer and harness run them",
    )
    parser.add_argument("--tag", help="added to the result file's name, e.g. learners")
    parser.add_argument("--repeats", type=int, help="timed rounds (default 5, quick 3)")
    parser.add_argument("--warmup", type=int, help="untimed calls per contender (default 2)")
    parser.add_argument("--min-run", type=float, help="seconds per timed run (default 0.5)")
    parser.add_argument("--budget", type=float, help="stop starting contenders after N seconds")
    parser.add_argument("--threads", type=int, help="CPU threads for torch (default: torch's)")
    parser.add_argument("--out", default="benchmarks", help="folder for results/ and tables/")
    parser.add_argument(
        "--update-docs",
        metavar="MARKDOWN",
        nargs="?",
        const="docs/speed.md",
        help="after the run, regenerate the tables in this file (default docs/speed.md)",
    )
    parser.add_argument(
        "--docs-only",
        action="store_true",
        help="run nothing: only regenerate <out>/tables and --update-docs (default docs/speed.md) "
        "from <out>/results",
    )
    parser.add_argument("--debug", action="store_true", help="show tracebacks")


def _docs_only(args: argparse.Namespace) -> int:
    """Regenerate ``<out>/tables`` and the speed docs from ``<out>/results``; run nothing."""
    write_speed_tables(f"{args.out}/results", f"{args.out}/tables")
    target = args.update_docs or "docs/speed.md"
    fresh = update_speed_docs(target, f"{args.out}/results")
    print(f"{target} was up to date" if fresh else f"updated {target}")
    return 0


def _config(args: argparse.Namespace) -> SpeedConfig:
    config = SpeedConfig(
        device=args.device,
        shapes=args.shapes,
        quick=args.quick,
        tasks=args.tasks,
        contenders=args.contenders,
        budget_s=args.budget,
        tag=args.tag,
    )
    if args.learners:
        config.extra_contenders = learner_contenders(args.learners)
        if config.contenders:  # --contenders limits the built-in ones; the learners come after
            config.contenders = [*config.contenders, *config.extra_contenders]
    for field, value in (("repeats", args.repeats), ("warmup", args.warmup)):
        if value is not None:
            setattr(config, field, value)
    if args.min_run is not None:
        config.min_run_s = args.min_run
    return config


def run(args: argparse.Namespace) -> int:
    """Run the lab as ``args`` say; the exit status."""
    if args.docs_only:
        return _docs_only(args)
    if args.threads:
        torch.set_num_threads(args.threads)
    document = run_speed(
        _config(args),
        log=lambda line: print(line, flush=True),
        progress=lambda so_far: write_partial(so_far, args.out),  # kept if the run is killed
    )
    json_path, md_path = write_result(document, args.out)
    print(f"wrote {json_path} and {md_path}")
    for target in document["targets"]:
        print(f"target: {target['target']}: {target['status']} {target['detail']}")
    if args.update_docs:
        update_speed_docs(args.update_docs, f"{args.out}/results")
        print(f"updated {args.update_docs}")
    return 0


def main(argv: list[str] | None = None) -> int:
    """``python -m lab.speed [options]``; the exit status (130 when interrupted, 2 on
    a usage error such as an unknown contender or shape)."""
    parser = argparse.ArgumentParser(prog="python -m lab.speed", description=__doc__)
    add_arguments(parser)
    args = parser.parse_args(argv)
    try:
        return run(args)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except (KeyError, ValueError, RuntimeError, FileNotFoundError) as exc:
        if args.debug:
            raise
        message = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
        print(f"speedlab: error: {message}", file=sys.stderr)
        return 2
