"""``metazoo plot DIR``: learning curves and score-against-shots figures of a results folder."""

from __future__ import annotations

import argparse

__all__ = ["register", "run"]


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "plot",
        help="plot learning curves and accuracy vs shots from a results folder",
        description="Write curves-<benchmark> and shots-<dataset>-<N>-way figures (PNG and PDF).",
    )
    parser.add_argument(
        "results",
        help="a results folder (`metazoo bench`), a run folder (`metazoo train`) or a cell's file",
    )
    parser.add_argument("--out", help="where to write the figures (default: RESULTS/figures)")
    parser.add_argument("--format", default="both", choices=("png", "pdf", "both"))
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from metazoo.bench.plot import plot_results

    formats = ("png", "pdf") if args.format == "both" else (args.format,)
    results = Path(args.results)
    out = (
        Path(args.out)
        if args.out
        else (results if results.is_dir() else results.parent) / "figures"
    )
    paths = plot_results(args.results, out, formats)
    if not paths:
        raise ValueError(f"no successful results to plot in {args.results}")
    for path in paths:
        print(f"wrote {path}")
    return 0
