"""``python -m metazoo.data download DATASET [--root DIR]``: fetch or prepare a dataset."""

from __future__ import annotations

import argparse
import sys

from metazoo.data.paths import data_root


def _download(dataset: str, root: str | None) -> str:
    if dataset == "omniglot":
        from metazoo.data.omniglot import download

        return str(download(root))
    if dataset in ("cifarfs", "fc100"):
        from metazoo.data.cifar import download_cifar100

        return str(download_cifar100(root))
    raise SystemExit(
        f"{dataset} cannot be downloaded automatically; see docs/data.md for where to get it and "
        f"put it under {data_root(root)}"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m metazoo.data")
    actions = parser.add_subparsers(dest="action", required=True)
    fetch = actions.add_parser("download", help="download a dataset into the data root")
    fetch.add_argument(
        "dataset", choices=("omniglot", "cifarfs", "fc100", "miniimagenet", "tieredimagenet", "cub")
    )
    fetch.add_argument("--root", default=None, help="data root (default: $METAZOO_DATA)")
    args = parser.parse_args(argv)
    try:
        print(_download(args.dataset, args.root))
    except (OSError, ValueError, RuntimeError) as exc:  # DownloadError and the like: a message
        print(f"python -m metazoo.data download: error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
