"""``metazoo bench SUITE [--out DIR] [--shard i/n]``: run a benchmark suite, then print its table.

SUITE is a path or the name of a built-in suite (``registry/suites/``, shipped in the package).
Each (learner, benchmark, seed) cell writes one JSON result file; finished cells are already done,
so rerunning a killed (or Ctrl-C'd) suite resumes it. ``--jobs N`` runs N cells side by side. A failing cell is recorded and the suite goes on. Missing
Omniglot is downloaded into ``$METAZOO_DATA``.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from metazoo.cli.progress import ProgressReporter, add_threads_argument, set_threads

__all__ = ["register", "run", "ensure_data"]


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "bench",
        help="run a benchmark suite (train + evaluate every cell) and print its table",
        description="Run SUITE (a YAML path, or the name of a built-in suite, e.g. quickstart).",
    )
    parser.add_argument("suite", help="suite name (e.g. quickstart) or path to a suite YAML")
    parser.add_argument("--out", help="results folder (default: results/<suite name>)")
    parser.add_argument("--tables", help="where to write the tables (default: OUT/tables)")
    parser.add_argument("--shard", help="run only shard i of n (0-based, e.g. 0/4) of the cells")
    parser.add_argument("--device", help="cpu, cuda, ... (default cpu)")
    add_threads_argument(parser)
    parser.add_argument(
        "--jobs",
        type=int,
        help="cells run side by side in this many processes, the free cores split among them "
        "(default: the cores this process may use)",
    )
    parser.add_argument("--no-download", action="store_true", help="never download datasets")
    parser.add_argument("--quiet", action="store_true", help="no progress output")
    parser.add_argument(
        "--allow-dirty",
        action="store_true",
        help="tabulate results of uncommitted changes (the table is marked DRAFT)",
    )
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    parser.set_defaults(func=run)


def _offline_help(error: Exception) -> str:
    from metazoo.data.omniglot import URL_PREFIX
    from metazoo.data.paths import data_root

    root = data_root()
    return (
        f"Omniglot is not in {root / 'omniglot-py'} and could not be downloaded ({error}).\n"
        "To get it, do one of:\n"
        f"  1. on a machine with internet: `python -m metazoo.data download omniglot --root {root}`;\n"
        f"  2. fetch {URL_PREFIX}/images_background.zip and images_evaluation.zip, put both in "
        f"{root / 'omniglot-py'}/, then run `python -m metazoo.data download omniglot` "
        "(it unpacks zips already there and checks their md5);\n"
        "  3. or point METAZOO_DATA at a folder that already holds omniglot-py/ "
        f"(METAZOO_DATA is {os.environ.get('METAZOO_DATA', 'not set')!r}).\n"
        "Then rerun this command; finished cells are kept."
    )


def ensure_data(benchmarks: list[str], download: bool, say=print) -> None:
    """Download Omniglot into ``$METAZOO_DATA`` when a suite needs it and it is not there."""
    from metazoo.cards import benchmark_card
    from metazoo.data.paths import data_root

    datasets = {benchmark_card(b)["dataset"] for b in benchmarks}
    if "omniglot" not in datasets or (data_root() / "omniglot-py" / "images_evaluation").is_dir():
        return
    if not download:
        raise RuntimeError(_offline_help(RuntimeError("--no-download was given")))
    from metazoo.data.omniglot import download as fetch

    say(f"Omniglot not found: downloading it into {data_root() / 'omniglot-py'} (about 9 MB) ...")
    try:
        fetch()
    except OSError as exc:  # URLError is an OSError: no network, DNS, proxy, ...
        raise RuntimeError(_offline_help(exc)) from exc


def run(args: argparse.Namespace) -> int:
    from metazoo.bench import collect, load_suite, parse_shard, render, run_suite, write_tables
    from metazoo.bench.parallel import plan_jobs
    from metazoo.engine.threads import usable_cores

    suite = load_suite(args.suite)
    shard = parse_shard(args.shard) if args.shard else None
    out = Path(args.out or f"results/{suite.name}")
    cells = suite.cells(shard)
    jobs, _ = plan_jobs(len(cells), args.jobs or usable_cores(), 1)
    threads = set_threads(args.threads, jobs)
    with ProgressReporter(quiet=args.quiet) as progress:
        ensure_data(sorted({c.benchmark for c in cells}), not args.no_download, progress.say)
        where = f" (shard {args.shard})" if shard else ""
        side = f", {jobs} side by side" if jobs > 1 else ""
        progress.say(
            f"suite {suite.name}{where}: {len(cells)} cells{side}, {threads} thread(s) each -> {out}"
        )
        try:
            report = run_suite(
                suite, out, shard=shard, device=args.device, callback=progress, jobs=jobs,
                threads=threads,
            )  # fmt: skip
        except KeyboardInterrupt:
            progress.say(
                "interrupted: finished cells are kept and running ones resume from their last "
                "checkpoint; run the same command again to go on"
            )
            return 130
    results = collect(out, [c.key for c in suite.cells()], allow_dirty=args.allow_dirty)
    results.deviations = suite.deviations
    if results.cells:
        if not args.quiet:
            print(render(results, "md"))
        tables = Path(args.tables) if args.tables else out / "tables"
        written = write_tables(results, tables)
        print(f"tables: {', '.join(str(p) for p in written)}")
    if report.failed:
        print(f"{len(report.failed)} cell(s) failed; their errors and tracebacks are in:")
        for path in report.failed:
            print(f"  {path}")
        return 1
    return 0
