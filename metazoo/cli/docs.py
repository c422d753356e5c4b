"""``metazoo docs [--check] [FILE]``: regenerate README sections from cards and result files."""

from __future__ import annotations

import argparse
from pathlib import Path

from metazoo.readme import update_file


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("docs", help="regenerate the README's generated sections")
    parser.add_argument("file", nargs="?", default="README.md", type=Path)
    parser.add_argument("--check", action="store_true", help="exit 1 if the file is stale")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if not args.file.is_file():
        raise FileNotFoundError(
            f"{args.file}: no such file; run from the repository root or pass the path"
        )
    fresh = update_file(args.file, check=args.check)
    if args.check and not fresh:
        print(f"{args.file} is stale: run `metazoo docs {args.file}` and commit the result")
        return 1
    print(f"{args.file}: {'up to date' if fresh else 'updated'}")
    return 0
