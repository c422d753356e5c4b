"""``metazoo speed LEARNER BENCHMARK``: tasks/s, peak memory and the fp32 meta-gradient check here.

Any registered learner (plugins included) is built for the benchmark as ``build_learner`` builds
it and timed on synthetic episodes of the benchmark's shape (no dataset needed); its fp32
meta-gradient is compared with the same learner's in float64 on the same batch. Comparisons with
other libraries and the project's speed targets are the lab's: ``python -m lab.speed``
in a checkout (docs/speed.md).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "speed",
        help="time a learner's meta-training and check its fp32 meta-gradient on this machine",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_arguments(parser)
    parser.set_defaults(func=run)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``metazoo speed``."""
    parser.add_argument("learner", help="a registered learner (see `metazoo ls learners`)")
    parser.add_argument("benchmark", help="a benchmark card, e.g. omniglot-5w1s")
    parser.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N (default cpu)")
    parser.add_argument("--tasks", type=int, help="tasks per training step (default: the card's)")
    parser.add_argument("--repeats", type=int, default=5, help="timed runs (default 5)")
    parser.add_argument("--warmup", type=int, default=2, help="untimed calls first (default 2)")
    parser.add_argument(
        "--min-run", type=float, default=0.5, help="seconds per timed run (default 0.5)"
    )
    parser.add_argument("--seed", type=int, default=0, help="initialisation and episodes")
    parser.add_argument("--tf32", action="store_true", help="allow TF32 (default: plain fp32)")
    parser.add_argument("--threads", type=int, help="CPU threads for torch (default: torch's)")
    parser.add_argument(
        "--max-error",
        type=float,
        help="exit 1 when the fp32 meta-gradient is further than this from float64 (relative)",
    )
    parser.add_argument("--json", type=Path, help="also write the measurements to this file")
    parser.add_argument("--debug", action="store_true", help="show tracebacks")


def run(args: argparse.Namespace) -> int:
    import torch

    from metazoo.bench.speed import measure_speed

    if args.threads:
        torch.set_num_threads(args.threads)
    report = measure_speed(
        args.learner,
        args.benchmark,
        device=args.device,
        meta_batch=args.tasks,
        warmup=args.warmup,
        repeats=args.repeats,
        min_run_s=args.min_run,
        seed=args.seed,
        tf32=args.tf32,
    )
    print(report.render())
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report.to_dict(), indent=2) + "\n")
        print(f"wrote {args.json}")
    if args.max_error is not None and report.meta_grad_rel_error > args.max_error:
        print(
            f"{report.checked} error {report.meta_grad_rel_error:.2e} is above --max-error "
            f"{args.max_error:g}: try fewer inner steps, or float64 for this learner"
        )
        return 1
    return 0
