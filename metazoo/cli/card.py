"""``metazoo card check PATH...``: validate learner or benchmark cards (yours or a plugin's)."""

from __future__ import annotations

import argparse

from rich.console import Console

from metazoo.cards import CardError, check_card


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("card", help="validate YAML cards")
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    check = actions.add_parser("check", help="validate card files")
    check.add_argument("paths", nargs="+", metavar="PATH")
    check.set_defaults(func=run_check)


def run_check(args: argparse.Namespace) -> int:
    console = Console(soft_wrap=True)
    failed = 0
    for path in args.paths:
        try:
            kind, data = check_card(path)
            console.print(f"[green]ok[/green] {path} ({kind} card {data['name']!r})")
        except CardError as exc:
            failed += 1
            console.print(f"[red]invalid[/red] {exc}")
    return 1 if failed else 0
