"""``metazoo per-source RUN [--episodes N] [--sources S ...] [--json FILE]``: a Meta-Dataset
checkpoint evaluated on each test source alone (600 episodes each by default), printed as
Meta-Dataset's leaderboard reports it; the JSON file it writes is what ``metazoo table`` reads
back (learners x sources) from a folder of such files."""

from __future__ import annotations

import argparse
from pathlib import Path

__all__ = ["register", "run"]

#: Training options that choose sources; per-source evaluation picks its own.
_SOURCE_KEYS = ("sources", "test_sources")


def register(subparsers: argparse._SubParsersAction) -> None:
    from metazoo.cli.progress import add_threads_argument, add_trust_argument

    parser = subparsers.add_parser(
        "per-source",
        help="evaluate a Meta-Dataset checkpoint on each test source (per-source table)",
        description="Evaluate a checkpoint of a Meta-Dataset benchmark on episodes 0..N-1 of each "
        "test source alone, print learner x sources (mean ± 95% CI) and write the results to "
        "--json (default RUN/per_source.json); `metazoo table DIR` tabulates such files.",
    )
    parser.add_argument(
        "checkpoint",
        help="a run folder (`metazoo train`), a suite cell's result file, or a .pt file",
    )
    parser.add_argument("--episodes", type=int, help="episodes per source (default: the card's)")
    parser.add_argument("--seed", type=int, default=0, help="episode seed (default 0)")
    parser.add_argument("--sources", nargs="+", help="these test sources (default: all)")
    parser.add_argument("--json", help="where to write the results")
    parser.add_argument("--device", help="cpu, cuda, ...")
    add_threads_argument(parser)
    add_trust_argument(parser)
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from metazoo.bench.per_source import evaluate_per_source, per_source_table, save_per_source
    from metazoo.cards import benchmark_card
    from metazoo.cli.progress import set_threads
    from metazoo.predict import load_run

    set_threads(args.threads)
    learner, ckpt = load_run(args.checkpoint, args.device, trust=args.trust_checkpoint)
    overrides = dict(ckpt.get("sampler_overrides") or {})
    sources = args.sources or overrides.get("test_sources")
    options = {k: v for k, v in overrides.items() if k not in _SOURCE_KEYS}
    episodes = args.episodes or benchmark_card(ckpt["benchmark"])["test_episodes"]
    results = evaluate_per_source(
        learner, ckpt["benchmark"], episodes, args.seed, sources, device=args.device, **options
    )
    run_dir = Path(args.checkpoint)
    default = (run_dir if run_dir.is_dir() else run_dir.parent) / "per_source.json"
    path = save_per_source(results, args.json or default)
    print(per_source_table([path]), end="")
    print(f"wrote {path}")
    return 0
