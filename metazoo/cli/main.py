"""Entry point of the ``metazoo`` console script.

Subcommands are the modules listed in ``SUBCOMMANDS``; each defines ``register(subparsers)``, which
adds its parser and sets ``func(args) -> int``. A subcommand whose module is not present yet is
simply absent from ``--help``.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from metazoo import __version__

SUBCOMMANDS = ("ls", "card", "train", "eval", "predict", "bench", "table", "plot", "speed")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="metazoo", description="A pluggable zoo of meta-learning algorithms for PyTorch."
    )
    parser.add_argument("--version", action="version", version=f"metazoo {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in SUBCOMMANDS:
        try:
            module = importlib.import_module(f"metazoo.cli.{name}")
        except ModuleNotFoundError as exc:
            if exc.name == f"metazoo.cli.{name}":
                continue
            raise
        module.register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 0
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except (KeyError, ValueError, TypeError, FileNotFoundError, RuntimeError) as exc:
        if getattr(args, "debug", False):
            raise
        message = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
        print(f"metazoo {args.command}: error: {message}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
