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

SUBCOMMANDS = (
    "ls",
    "card",
    "train",
    "eval",
    "predict",
    "bench",
    "table",
    "plot",
    "speed",
    "per_source",
)


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
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 0
    args.argv = argv  # what was typed, for messages that give a command to run next
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print(f"metazoo {args.command}: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # every failure a message; the traceback behind --debug
        if getattr(args, "debug", False):
            raise
        print(f"metazoo {args.command}: error: {_message(exc)}", file=sys.stderr)
        return 2


#: Errors whose message is written for the user; any other kind is named, as it may be a bug.
_USER_ERRORS = (KeyError, ValueError, TypeError, OSError, RuntimeError)


def _message(exc: Exception) -> str:
    message = str(exc.args[0]) if isinstance(exc, KeyError) and exc.args else str(exc)
    if not isinstance(exc, _USER_ERRORS) or not message:
        message = f"{type(exc).__name__}: {message} (rerun with --debug for the traceback)"
    return message


if __name__ == "__main__":
    raise SystemExit(main())
