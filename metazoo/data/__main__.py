"""``python -m metazoo.data download DATASET [--root DIR]``: fetch or prepare a dataset.

``python -m metazoo.data convert-metadataset omniglot [--source DIR] [--root DIR] [--alphabets A
...]``: write Omniglot in Meta-Dataset's converted form (:mod:`metazoo.data.convert`)."""

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
    convert = actions.add_parser(
        "convert-metadataset", help="write a dataset in Meta-Dataset's converted form"
    )
    convert.add_argument("dataset", choices=("omniglot",))
    convert.add_argument("--source", help="the omniglot-py folder (default: in the data root)")
    convert.add_argument("--root", default=None, help="data root (default: $METAZOO_DATA)")
    convert.add_argument("--alphabets", nargs="+", help="only these alphabets (default: all)")
    args = parser.parse_args(argv)
    try:
        if args.action == "download":
            print(_download(args.dataset, args.root))
        else:
            from metazoo.data.convert import convert_omniglot

            print(convert_omniglot(args.source, args.root, args.alphabets))
    except (OSError, ValueError, RuntimeError) as exc:  # DownloadError and the like: a message
        print(f"python -m metazoo.data {args.action}: error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
