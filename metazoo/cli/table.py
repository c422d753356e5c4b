"""``metazoo table DIR --format md|latex|csv``: the paper table of a results folder.

A folder of per-source result files (``metazoo per-source``, Meta-Dataset) gives the learners x
sources table instead (Markdown or CSV)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from metazoo.bench.suite import Suite

__all__ = ["register", "run", "expected_cells"]


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "table",
        help="turn a results folder into a table (Markdown, LaTeX, CSV) and a .bib",
        description="Aggregate the result files of DIR (seeds averaged) into a table with mean ± "
        "95% CI, the best per column in bold, ties with the best marked, and the paper's number.",
    )
    parser.add_argument(
        "results",
        help="a results folder (`metazoo bench`), a run folder (`metazoo train`) or a cell's file",
    )
    parser.add_argument("--format", default="md", choices=("md", "latex", "csv", "all"))
    parser.add_argument("--out", help="write table.<ext> and references.bib into this folder")
    parser.add_argument("--suite", help="the suite (name or path), to list its missing cells")
    parser.add_argument(
        "--allow-dirty",
        action="store_true",
        help="tabulate results of uncommitted changes (the table is marked DRAFT)",
    )
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    parser.set_defaults(func=run)


def suite_of(results_dir: str | Path, suite: str | None = None) -> Suite | None:
    """``suite``, or the suite recorded in the result files when it resolves."""
    from metazoo.bench import load_results, load_suite

    if suite is None:
        records = load_results(results_dir)
        paths = [r.get("suite_path") for r in records if r.get("suite_path")]
        suite = next((p for p in paths if Path(p).is_file()), None) or _builtin_suite(records)
        if suite is None:
            return None
    return load_suite(suite)


def expected_cells(results_dir: str | Path, suite: str | None = None) -> list[str] | None:
    """The cell keys of ``suite``, or of the suite recorded in the result files when it resolves."""
    found = suite_of(results_dir, suite)
    return None if found is None else [cell.key for cell in found.cells()]


def _builtin_suite(records: list[dict]) -> str | None:
    """The built-in suite the records name, when its cells hold every recorded cell (results
    written on another machine, or before the built-in suites moved into the package)."""
    from metazoo.bench import load_suite
    from metazoo.bench.suite import suite_dir
    from metazoo.cards import yaml_files

    builtin = {f.name.removesuffix(".yaml") for f in yaml_files(suite_dir())}
    for name in dict.fromkeys(r.get("suite") for r in records):
        if name in builtin:
            keys = {cell.key for cell in load_suite(name).cells()}
            if all(r.get("cell") in keys for r in records if r.get("suite") == name):
                return name
    return None


def _per_source(args: argparse.Namespace) -> bool:
    """Print (or write into ``--out``) the learners x sources table of the folder's per-source
    result files; False when it holds none."""
    from metazoo._atomic import write_text_atomic
    from metazoo.bench.per_source import per_source_files, per_source_table

    files = per_source_files(args.results) if Path(args.results).is_dir() else []
    if not files:
        return False
    formats = ("md", "csv") if args.format == "all" else (args.format,)
    if "latex" in formats:
        raise ValueError("per-source tables are Markdown or CSV; use --format md or csv")
    for fmt in formats:
        table = per_source_table(files, fmt)
        if args.out:
            print(f"wrote {write_text_atomic(table, Path(args.out) / f'per_source.{fmt}')}")
        else:
            print(table, end="")
    return True


def run(args: argparse.Namespace) -> int:
    from metazoo.bench import FORMATS, collect, load_results, render, write_tables

    if _per_source(args) and not load_results(args.results):
        return 0
    # one cell's file is a table of its own; a folder is checked against its suite's cells
    suite = suite_of(args.results, args.suite) if Path(args.results).is_dir() else None
    expected = None if suite is None else [cell.key for cell in suite.cells()]
    results = collect(args.results, expected, allow_dirty=args.allow_dirty)
    results.deviations = [] if suite is None else suite.deviations
    if not results.cells:
        raise ValueError(f"no successful results in {args.results}; see the failed cells there")
    formats = tuple(FORMATS) if args.format == "all" else (args.format,)
    if args.out:
        for path in write_tables(results, args.out, formats):
            print(f"wrote {path}")
    else:
        for fmt in formats:
            print(render(results, fmt))
    return 0
