"""Build a learner for a benchmark: the backbone the benchmark card names, sized to its inputs and ways."""

from __future__ import annotations

import dataclasses
from typing import Any

import torch
from torch import nn

from metazoo._registry import create_learner, get_learner
from metazoo.cards import CardError, benchmark_card, learner_card
from metazoo.models import make_backbone

__all__ = [
    "build_learner",
    "model_kind",
    "learner_tasks",
    "config_fields",
    "fields_it_takes",
    "paper_settings",
    "card_config_layers",
    "benchmark_fills",
    "train_defaults",
    "learner_backbone_options",
]


def model_kind(name: str) -> str:
    """What network the learner expects: ``classifier`` (N-way head), ``embedding`` or ``none``."""
    try:
        return learner_card(name)["model"]
    except CardError:
        return getattr(get_learner(name).cls, "model_kind", "classifier")


def learner_tasks(name: str) -> tuple[str, ...]:
    """The task types a learner supports (``classification``, ``regression``)."""
    try:
        return tuple(learner_card(name)["tasks"])
    except CardError:
        return tuple(getattr(get_learner(name).cls, "tasks", ("classification",)))


def config_fields(name: str) -> set[str]:
    """Names of the config fields of learner ``name``."""
    return {f.name for f in dataclasses.fields(get_learner(name).cls.Config)}


def fields_it_takes(name: str, available: dict[str, Any]) -> dict[str, Any]:
    """The entries of ``available`` (``ways``, ``input_shape``, ``task``...) that learner ``name``'s
    config has, None values left out: what a benchmark fills in for the learner."""
    fields = config_fields(name)
    return {k: v for k, v in available.items() if k in fields and v is not None}


def card_config_layers(name: str, benchmark: str) -> list[tuple[str, dict[str, Any]]]:
    """Learner ``name``'s config from its card, as ``(source, values)`` from lowest to highest
    precedence: the card's ``config``, then its ``benchmark_config`` for ``benchmark`` (the
    paper's settings there, e.g. MAML's alpha=0.4 on Omniglot). Empty for a learner without a card."""
    try:
        card = learner_card(name)
    except CardError:
        return []
    return [
        (f"learner card {name} (config)", dict(card.get("config") or {})),
        (
            f"learner card {name} (benchmark_config.{benchmark})",
            dict((card.get("benchmark_config") or {}).get(benchmark, {})),
        ),
    ]


def paper_settings(name: str, benchmark: str) -> dict[str, Any]:
    """Learner ``name``'s config from its card for ``benchmark`` (:func:`card_config_layers`
    merged)."""
    return {k: v for _, layer in card_config_layers(name, benchmark) for k, v in layer.items()}


def benchmark_fills(
    name: str, benchmark: str, ways: int | None = None, *, test: bool = False
) -> dict[str, Any]:
    """The learner config fields ``benchmark`` fills in (``ways``, ``input_shape``, ``task``,
    ``padded_head``) that learner ``name``'s config has; ``num_classes`` is not among them (it
    needs the training split, read when the learner is built).

    Args:
        ways: the head's ways instead of the card's (a run's sampler ``ways``).
        test: the card's ``test_ways`` instead of ``ways``.
    """
    bench = benchmark_card(benchmark)
    ways = ways or (bench.get("test_ways", bench.get("ways")) if test else bench.get("ways"))
    filled = {"ways": ways, "input_shape": tuple(bench["input_shape"]), "task": bench["task"]}
    if (bench.get("dataset_options") or {}).get("varied"):  # heads of the largest ways, masked
        filled["padded_head"] = True
    return fields_it_takes(name, filled)


def learner_backbone_options(name: str, backbone: str) -> dict[str, Any]:
    """Options learner ``name``'s paper builds ``backbone`` with, from its card's
    ``backbone_options`` (e.g. the Relation Network's Conv-4 keeps 64x5x5 maps on Omniglot); empty
    for a learner without a card or without options for that backbone."""
    try:
        card = learner_card(name)
    except CardError:
        return {}
    return dict((card.get("backbone_options") or {}).get(backbone, {}))


def train_defaults(name: str, benchmark: str) -> dict[str, Any]:
    """The paper's training settings (TrainConfig fields: ``steps``, ``meta_batch``, ``lr``...)
    of learner ``name`` on ``benchmark``, from its card's ``benchmark_train``; empty when the card
    gives none (the benchmark card's ``meta_batch`` then applies)."""
    try:
        card = learner_card(name)
    except CardError:
        return {}
    return dict((card.get("benchmark_train") or {}).get(benchmark, {}))


def build_learner(
    name: str,
    benchmark: str,
    *,
    backbone: str | None = None,
    backbone_options: dict[str, Any] | None = None,
    seed: int | None = 0,
    device: torch.device | str | None = None,
    test: bool = False,
    ways: int | None = None,
    **config: Any,
) -> nn.Module:
    """Create learner ``name`` with the default backbone of ``benchmark``.

    The backbone's options come from the benchmark card, then the learner card's
    ``backbone_options`` for that backbone, then ``backbone_options``.
    The learner card's ``config`` is applied first, then its ``benchmark_config`` for
    ``benchmark`` (the paper's settings there), then ``config``. Config fields called ``ways``
    and ``input_shape`` (when the learner has them) are filled from the benchmark unless given;
    ``num_classes`` from the training split's sampler. For the card's training settings too (a
    :class:`~metazoo.training.TrainConfig` as ``metazoo train`` and suites get it), use
    :func:`metazoo.resolve_run`.

    Args:
        name: a registered learner.
        benchmark: a benchmark card name (``omniglot-5w1s``, ``sinusoid``, ...).
        backbone: overrides the benchmark's backbone (``conv4``, ``resnet12``, ``mlp``).
        backbone_options: passed to :func:`metazoo.models.make_backbone` (e.g. ``{"hidden": 32}``).
        seed: seeds the parameter initialisation (``torch.manual_seed``) when not None.
        device: where to put the learner.
        test: size the classifier head for the benchmark's ``test_ways`` instead of ``ways``.
        ways: size the head (and a ``ways`` config field) for this many ways instead.
        **config: learner config overrides.
    """
    bench = benchmark_card(benchmark)
    if bench["task"] not in learner_tasks(name):
        raise ValueError(
            f"learner {name!r} does not support {bench['task']} benchmarks like {benchmark!r}"
        )
    ways = ways or (bench.get("test_ways", bench.get("ways")) if test else bench.get("ways"))
    input_shape = tuple(bench["input_shape"])
    kind = model_kind(name)
    if seed is not None:
        torch.manual_seed(seed)
    arch = backbone or bench["backbone"]
    # The benchmark card's backbone options are for its backbone; another backbone starts from its
    # own. The learner card's options for this backbone (its paper's network) come next.
    card_options = (bench.get("backbone_options") or {}) if arch == bench["backbone"] else {}
    options = {**card_options, **learner_backbone_options(name, arch), **(backbone_options or {})}
    model: nn.Module | None
    if kind == "none":
        model = None
    elif kind == "classifier":
        model = make_backbone(
            arch,
            input_shape,
            out_features=ways if bench["task"] == "classification" else 1,
            **options,
        )
    else:
        model = make_backbone(arch, input_shape, out_features=None, **options)
    filled = benchmark_fills(name, benchmark, ways)
    if "num_classes" in config_fields(name) and "num_classes" not in config:
        # learners that pre-train on all meta-training classes (the finetune baseline)
        from metazoo.data import make_sampler

        filled["num_classes"] = make_sampler(benchmark, "train").num_classes
    # The card's config is passed whole: a key the learner does not take is an error, not dropped.
    values = {**paper_settings(name, benchmark), **filled, **config}
    learner = create_learner(name, model, **values)
    return learner.to(device) if device is not None else learner
