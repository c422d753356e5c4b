"""``metazoo eval CHECKPOINT [--episodes N --seed S]``: test a trained learner on fixed episodes."""

from __future__ import annotations

import argparse

__all__ = ["register", "run"]


def register(subparsers: argparse._SubParsersAction) -> None:
    from metazoo.cli.progress import add_threads_argument, add_trust_argument

    parser = subparsers.add_parser(
        "eval",
        help="evaluate a checkpoint on fixed test episodes",
        description="Evaluate a checkpoint written by `metazoo train` (best.pt or last.pt, or "
        "the run folder) on episodes 0..N-1 of the benchmark's test split.",
    )
    parser.add_argument(
        "checkpoint",
        help="a run folder (`metazoo train`), a suite cell's result file, or a .pt file",
    )
    parser.add_argument("--episodes", type=int, help="episodes (default: the benchmark card's)")
    parser.add_argument("--seed", type=int, default=0, help="episode seed (default 0)")
    parser.add_argument("--split", default="test", choices=("test", "val", "train"))
    parser.add_argument("--device", help="cpu, cuda, ...")
    parser.add_argument("--json", help="also write the result (per-episode scores included) here")
    parser.add_argument(
        "--distributed",
        action="store_true",
        help="split the episodes over the processes torchrun starts (automatic under torchrun)",
    )
    add_threads_argument(parser)
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    add_trust_argument(parser)
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from metazoo import distributed as dist
    from metazoo._atomic import write_json_atomic
    from metazoo.cards import benchmark_card
    from metazoo.cli.progress import ProgressReporter, set_threads
    from metazoo.evaluation import evaluate
    from metazoo.predict import load_run

    set_threads(args.threads)
    if args.distributed or dist.launched():
        dist.init(device=args.device)  # each rank scores a block of the episodes
        args.device = dist.rank_device(args.device)
    learner, ckpt = load_run(args.checkpoint, args.device, trust=args.trust_checkpoint)
    episodes = args.episodes or benchmark_card(ckpt["benchmark"])["test_episodes"]
    overrides = ckpt.get("sampler_overrides") or {}
    quiet = args.quiet or not dist.is_main()
    with ProgressReporter(quiet=quiet) as progress:
        result = evaluate(
            learner, ckpt["benchmark"], episodes=episodes, seed=args.seed, split=args.split,
            progress=lambda done, total: progress({"kind": "episode", "step": done, "steps": total}),
            **overrides,
        )  # fmt: skip
    if not dist.is_main():
        return 0  # rank 0 prints and writes; every rank holds the same result
    memory = result.provenance["memory"]["measure"]
    print(
        f"{result} [checkpoint step {ckpt['step']}, {result.tasks_per_s:.1f} tasks/s, "
        f"{result.peak_memory_mb:,.0f} MiB: {memory}]"
    )
    if args.json:
        write_json_atomic(result.to_dict(), args.json)
    return 0
