"""``metazoo ls``: the registered learners (with provider and card status), the benchmarks and the
built-in suites (``metazoo bench NAME``)."""

from __future__ import annotations

import argparse

from rich.console import Console
from rich.table import Table

from metazoo._registry import get_learner, list_learners, plugin_errors
from metazoo.cards import (
    CardError,
    benchmark_card,
    learner_card,
    list_benchmark_cards,
    yaml_files,
)


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("ls", help="list learners, benchmarks and built-in suites")
    parser.add_argument(
        "what", nargs="?", choices=("learners", "benchmarks", "suites", "all"), default="all"
    )
    parser.set_defaults(func=run)


def _card_status(name: str) -> str:
    try:
        learner_card(name)
        return "ok"
    except CardError as exc:
        return "missing" if "has no card" in str(exc) else f"invalid: {exc}"


def learner_rows() -> list[tuple[str, str, str, str, str]]:
    """``(name, family, provider, card status, paper)`` for every registered learner."""
    rows = []
    for name in list_learners():
        entry = get_learner(name)
        status = _card_status(name)
        paper = ""
        if status == "ok":
            card = learner_card(name)
            paper = f"{card['authors'].split(',')[0].split(' ')[-1]} et al. {card['year']}"
        rows.append((name, entry.family, entry.provider, status, paper))
    return rows


#: The columns of :func:`benchmark_rows`.
BENCHMARK_COLUMNS = ("name", "dataset", "task", "ways", "shots", "queries", "backbone")


def benchmark_rows() -> list[tuple[str, ...]]:
    """One row of :data:`BENCHMARK_COLUMNS` per benchmark card."""
    rows = []
    for name in list_benchmark_cards():
        card = benchmark_card(name)
        rows.append(
            (
                name,
                card["dataset"],
                card["task"],
                str(card.get("ways", "-")),
                str(card["shots"]),
                str(card["queries"]),
                card["backbone"],
            )
        )
    return rows


def suite_rows() -> list[tuple[str, str]]:
    """``(name, description)`` of every built-in suite (``metazoo bench NAME`` runs it)."""
    from metazoo.bench.suite import load_suite, suite_dir

    names = sorted(f.name.removesuffix(".yaml") for f in yaml_files(suite_dir()))
    return [(name, load_suite(name).description) for name in names]


def run(args: argparse.Namespace) -> int:
    console = Console(soft_wrap=True)
    if not console.is_terminal:  # piped or redirected: as wide as the rows, never cut
        console = Console(soft_wrap=True, width=1000)
    if args.what in ("learners", "all"):
        table = Table(title="learners")
        for column in ("name", "family", "provider", "card", "paper"):
            table.add_column(column, no_wrap=column == "name")
        for row in learner_rows():
            table.add_row(*row)
        console.print(table)
        for error in plugin_errors():
            console.print(
                f"[red]broken plugin[/red] {error.entry_point} (distribution {error.distribution}): {error.error}"
            )
    if args.what in ("benchmarks", "all"):
        table = Table(title="benchmarks")
        for column in BENCHMARK_COLUMNS:
            table.add_column(column, no_wrap=column == "name")
        for row in benchmark_rows():
            table.add_row(*row)
        console.print(table)
    if args.what in ("suites", "all"):
        table = Table(title="built-in suites (metazoo bench NAME --out DIR)")
        for column in ("name", "description"):
            table.add_column(column, no_wrap=column == "name")
        for row in suite_rows():
            table.add_row(*row)
        console.print(table)
    return 0
