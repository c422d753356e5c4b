"""``metazoo predict RUN --support DIR --query DIR|FILE... [--out FILE.csv|.json]``: classify
your own images with a trained learner adapted on your own labelled examples."""

from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path

__all__ = ["register", "run", "format_table"]


def register(subparsers: argparse._SubParsersAction) -> None:
    from metazoo.cli.progress import add_threads_argument, add_trust_argument

    parser = subparsers.add_parser(
        "predict",
        help="classify your own images with a trained learner",
        description="Adapt the learner of RUN (a `metazoo train` run folder, or best.pt/last.pt) "
        "on a support folder holding one sub-folder of images per class, then print, for each "
        "query image, the predicted class and the class probabilities. Images of any size and "
        "format are read as the benchmark's images (see docs/predict.md).",
    )
    parser.add_argument(
        "run", help="a run folder (`metazoo train`), a suite cell's result file, or a .pt file"
    )
    parser.add_argument("--support", required=True, help="folder of class folders of images")
    parser.add_argument(
        "--query",
        required=True,
        nargs="+",
        metavar="DIR|FILE",
        help="query images, or folders of them (images in sub-folders are labelled by the "
        "sub-folder's name, and accuracy is reported)",
    )
    parser.add_argument("--out", help="also write the predictions to FILE.csv or FILE.json")
    parser.add_argument("--device", help="cpu, cuda, ...")
    add_threads_argument(parser)
    add_trust_argument(parser)
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    parser.set_defaults(func=run)


def format_table(predictions, top: int = 3) -> str:
    """A readable table: query file, its folder's class (if any), prediction, top classes."""
    rows = [("query", "true class", "predicted", f"top {top} (probability)")]
    for row in predictions.rows():
        ranked = sorted(row["probabilities"].items(), key=lambda kv: -kv[1])[:top]
        best = ", ".join(f"{c} {p:.2f}" for c, p in ranked)
        rows.append((Path(row["query"]).name, row["true_class"] or "-", row["predicted"], best))
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    lines = ["  ".join(r[i].ljust(widths[i]) for i in range(3)) + "  " + r[3] for r in rows]
    return "\n".join(line.rstrip() for line in lines)


def run(args: argparse.Namespace) -> int:
    from metazoo.cli.progress import set_threads
    from metazoo.predict import load_run, predict_folders

    set_threads(args.threads)
    learner, ckpt = load_run(args.run, args.device, trust=args.trust_checkpoint)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", UserWarning)
        predictions = predict_folders(learner, ckpt["benchmark"], args.support, args.query)
    for warning in caught:
        print(f"metazoo predict: warning: {warning.message}", file=sys.stderr)
    print(
        f"{ckpt['learner']} trained on {ckpt['benchmark']} ({ckpt['path']}, step {ckpt['step']}); "
        f"{len(predictions.classes)} classes from {args.support}"
    )
    print(format_table(predictions))
    if predictions.accuracy is not None:
        labelled = sum(t is not None for t in predictions.true_classes)
        print(f"accuracy on the {labelled} labelled queries: {predictions.accuracy:.1f}%")
    if args.out:
        about = {"run": ckpt["path"], "learner": ckpt["learner"], "benchmark": ckpt["benchmark"]}
        print(f"predictions: {predictions.save(args.out, about)}")
    return 0
