"""Benchmark suites → result files → paper-ready tables (Markdown, LaTeX, CSV) and BibTeX.

>>> suite = load_suite("quickstart")
>>> run_suite(suite, "results/quickstart")
>>> write_tables(collect("results/quickstart"), "tables/quickstart")

Internal: not part of metazoo's public API ("Public names" in docs/design.md).
"""

from metazoo.bench.render import to_bib, to_csv, to_latex, to_markdown
from metazoo.bench.results import Aggregate, ResultSet, collect, load_results
from metazoo.bench.runner import SuiteReport, run_cell, run_suite, write_json_atomic
from metazoo.bench.suite import Cell, Suite, load_suite, parse_shard, parse_suite
from metazoo.bench.tables import FORMATS, render, write_tables

__all__ = [
    "Aggregate",
    "Cell",
    "FORMATS",
    "ResultSet",
    "Suite",
    "SuiteReport",
    "collect",
    "load_results",
    "load_suite",
    "parse_shard",
    "parse_suite",
    "render",
    "run_cell",
    "run_suite",
    "to_bib",
    "to_csv",
    "to_latex",
    "to_markdown",
    "write_json_atomic",
    "write_tables",
]
