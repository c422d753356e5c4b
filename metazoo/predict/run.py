"""Class probabilities for query images from a learner adapted on a labelled support set.

:func:`class_probabilities` is the harness's protocol (``adapt`` under the learner's grad mode,
``predict`` without autograd, in ``eval()`` mode), softmaxed; :func:`predict_folders` runs it on a
support folder and query files and returns :class:`Predictions`, which write CSV or JSON.
"""

from __future__ import annotations

import csv
import io
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from metazoo._atomic import write_json_atomic, write_text_atomic
from metazoo.build import model_kind
from metazoo.cards import benchmark_card
from metazoo.evaluation.harness import learner_name
from metazoo.learner import adaptation_grad_mode
from metazoo.predict.images import image_format, read_queries, read_support

__all__ = [
    "Predictions",
    "class_probabilities",
    "check_class_count",
    "predict_folders",
    "uses_batch_statistics",
]


def _device_and_dtype(learner: nn.Module) -> tuple[torch.device, torch.dtype]:
    param = next(learner.parameters(), None)
    if param is None:
        return torch.device("cpu"), torch.get_default_dtype()
    return param.device, param.dtype


def class_probabilities(
    learner: nn.Module, support_x: Tensor, support_y: Tensor, query_x: Tensor, *, ways: int
) -> Tensor:
    """Softmax of ``learner.predict(learner.adapt(support), query_x)``, as the harness runs them.

    Args:
        learner: a trained learner (put in ``eval()`` mode; its mode is restored after).
        support_x: ``(N*K, *x)`` support inputs.
        support_y: ``(N*K,)`` class indices ``0..N-1``.
        query_x: ``(n, *x)`` query inputs.
        ways: N, the number of support classes.

    Returns:
        ``(n, N)`` class probabilities, on the CPU.
    """
    device, dtype = _device_and_dtype(learner)
    support_x, query_x = support_x.to(device, dtype), query_x.to(device, dtype)
    was_training = learner.training
    learner.eval()
    try:
        with adaptation_grad_mode(learner):
            state = learner.adapt(support_x, support_y.to(device), ways)
        with torch.no_grad():
            logits = learner.predict(state, query_x)
    finally:
        learner.train(was_training)
    return torch.softmax(logits.float(), dim=-1).cpu()


def uses_batch_statistics(learner: nn.Module) -> bool:
    """True when a BatchNorm layer of ``learner`` normalises with the statistics of the batch it
    is given, in ``eval()`` mode too (``track_running_stats=False``, the benchmarks' backbones)."""
    return any(
        isinstance(m, nn.modules.batchnorm._BatchNorm) and m.running_mean is None
        for m in learner.modules()
    )


def _head_width(learner: nn.Module, benchmark: str) -> tuple[int, str] | None:
    """``(classes, what)`` a learner is fixed to: an N-way classifier head (the benchmark's ways,
    as :func:`metazoo.build_learner` sized it) or a label encoding of ``config.ways`` (the
    model-based learners); None where any number of classes works (metric learners, and the
    fine-tuning baseline, whose ``ways`` only sizes its pre-training head beside ``num_classes``)."""
    name = learner_name(learner)
    if model_kind(name) == "classifier":
        width = int(benchmark_card(benchmark)["ways"])
        return width, f"its classifier head has {width} outputs"
    config = getattr(learner, "config", None)
    ways = getattr(config, "ways", None)
    if isinstance(ways, int) and not hasattr(config, "num_classes"):
        return ways, f"it encodes {ways} labels"
    return None


def check_class_count(learner: nn.Module, benchmark: str, classes: int) -> None:
    """Raise when a fixed-head learner cannot take a support set of ``classes`` classes.

    Raises:
        ValueError: more classes than the learner was trained for (or fewer, for an N-way
            classifier head), saying what to do.
    """
    fixed = _head_width(learner, benchmark)
    if fixed is None:
        return
    (width, what), name = fixed, learner_name(learner)
    retrain = (
        f"train {name} on {classes}-way episodes (a benchmark with {classes} ways; `metazoo ls "
        "benchmarks` lists them), or use a learner without a fixed head (protonet, matchingnet, "
        "relationnet)"
    )
    if classes > width:
        raise ValueError(
            f"the support folder has {classes} classes, more than the {width} {name} was trained "
            f"for ({what}): give at most {width} class folders, or {retrain}"
        )
    if classes < width and model_kind(name) == "classifier":
        raise ValueError(
            f"the support folder has {classes} classes, but {name} was trained for {width} "
            f"({what}): give exactly {width} class folders, or {retrain}"
        )


@dataclass
class Predictions:
    """Per-query predictions.

    Attributes:
        classes: the support classes, in column order of ``probabilities``.
        files: the query files.
        probabilities: ``(n, N)`` class probabilities.
        true_classes: the class folder each query came from, or None.
    """

    classes: list[str]
    files: list[str]
    probabilities: Tensor
    true_classes: list[str | None]

    @property
    def predicted(self) -> list[str]:
        """The most probable class of each query."""
        return [self.classes[i] for i in self.probabilities.argmax(dim=-1).tolist()]

    @property
    def accuracy(self) -> float | None:
        """% of queries whose sub-folder names the predicted class; None when none is labelled."""
        pairs = [(p, t) for p, t in zip(self.predicted, self.true_classes) if t is not None]
        return 100.0 * sum(p == t for p, t in pairs) / len(pairs) if pairs else None

    def rows(self) -> list[dict[str, Any]]:
        """One dict per query: file, true class, predicted class, its probability, and all."""
        return [
            {
                "query": f,
                "true_class": t,
                "predicted": p,
                "probability": float(row.max()),
                "probabilities": dict(zip(self.classes, map(float, row.tolist()))),
            }
            for f, t, p, row in zip(
                self.files, self.true_classes, self.predicted, self.probabilities
            )
        ]

    def to_csv(self) -> str:
        """CSV text: ``query, true_class, predicted, probability, p(<class>)...``."""
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(["query", "true_class", "predicted", "probability"] + [
            f"p({c})" for c in self.classes
        ])  # fmt: skip
        for row in self.rows():
            fixed = [row["query"], row["true_class"] or "", row["predicted"]]
            probs = [row["probability"], *row["probabilities"].values()]
            writer.writerow(fixed + [f"{p:.6f}" for p in probs])
        return out.getvalue()

    def save(self, path: str | os.PathLike, about: dict[str, Any] | None = None) -> Path:
        """Write ``.csv`` or ``.json`` (with ``about``: run, benchmark, ...) by the suffix.

        Raises:
            ValueError: another suffix.
        """
        path = Path(path)
        if path.suffix.lower() == ".csv":
            return write_text_atomic(self.to_csv(), path)
        if path.suffix.lower() == ".json":
            data = {**(about or {}), "classes": self.classes, "accuracy": self.accuracy}
            return write_json_atomic({**data, "predictions": self.rows()}, path)
        raise ValueError(f"--out must end in .csv or .json, got {path.name!r}")


def predict_folders(
    learner: nn.Module,
    benchmark: str,
    support: str | os.PathLike,
    queries: list[str | os.PathLike],
) -> Predictions:
    """Adapt ``learner`` on a support folder (one sub-folder of images per class) and classify
    query images, all read as ``benchmark``'s images.

    Args:
        learner: a trained learner (e.g. :func:`metazoo.load_learner`).
        benchmark: the benchmark it was trained on (its image size, channels, pixel convention).
        support: ``support/<class>/<images>``.
        queries: image files and folders (a folder's sub-folders label their images).

    Warns:
        UserWarning: one query image for a learner whose BatchNorm uses batch statistics: it is
            normalised with its own statistics alone, which changes its prediction.

    Raises:
        FileNotFoundError: no support folder, or a query path that does not exist.
        ValueError: an empty class folder, an unreadable image (naming it), or more classes than
            a fixed-head learner takes.
    """
    fmt = image_format(benchmark)
    shots = read_support(support, fmt)
    check_class_count(learner, benchmark, len(shots.classes))
    asked = read_queries(list(queries), fmt)
    if len(asked.files) == 1 and uses_batch_statistics(learner):
        warnings.warn(
            f"one query image ({asked.files[0]}): the learner's BatchNorm normalises the queries "
            "with their own batch statistics, so a single image is normalised alone, which it "
            "never saw in training, and its prediction is less reliable; give several queries "
            "in one call (as a test episode does)",
            UserWarning,
            stacklevel=2,
        )
    probabilities = class_probabilities(learner, shots.x, shots.y, asked.x, ways=len(shots.classes))
    return Predictions(shots.classes, asked.files, probabilities, asked.true_classes)
