"""The settings of one ``metazoo train`` run: ``--config FILE`` (a suite's run block) and the
``key=value`` overrides on top of it, in the one grammar of :mod:`metazoo.overrides`.

A key goes to the learner's ``Config``, :class:`~metazoo.training.TrainConfig`, the episode
sampler (``ways``, ``shots``, ``queries``, ``mode``, ``hierarchy``, ...) or the backbone
(``hidden``, ``channels``, ...); ``learner.``, ``train.``, ``sampler.`` or ``backbone.`` picks one
when two share a name.
"""

from __future__ import annotations

import dataclasses
import inspect
import typing
from typing import Any

from metazoo.bench.suite import SAMPLER_KEYS, load_run_block
from metazoo.overrides import split_overrides
from metazoo.training import TrainConfig

__all__ = ["RunSettings", "run_settings", "setting_targets", "describe_keys"]

#: Learner config fields the benchmark fills in; ``ways`` is a sampler key that also sizes the head.
_FILLED_BY_BENCHMARK = ("ways", "input_shape", "task", "num_classes")
#: Backbone constructor arguments the builder fills in.
_BUILT_IN_ARGUMENTS = ("self", "in_channels", "image_size", "in_features", "out_features", "return")
_LABELS = {"train": "training", "sampler": "the sampler", "backbone": "the backbone"}


@dataclasses.dataclass
class RunSettings:
    """Everything ``metazoo train`` passes on: learner config, TrainConfig fields, sampler
    overrides (every split, and the train split only), build options and test settings."""

    learner: dict[str, Any]
    train: dict[str, Any]
    sampler: dict[str, Any]
    train_sampler: dict[str, Any]
    build: dict[str, Any]
    eval: dict[str, Any]


def backbone_name(learner: str, benchmark: str, chosen: str | None) -> str | None:
    """The backbone the run builds, None for a learner that builds its own network.

    Raises:
        ValueError: ``--backbone`` given to a learner without one.
    """
    from metazoo.build import model_kind
    from metazoo.cards import benchmark_card

    if model_kind(learner) == "none":
        if chosen:
            raise ValueError(
                f"--backbone {chosen}: learner {learner!r} has no backbone (it builds its own "
                "network); drop --backbone"
            )
        return None
    return chosen or benchmark_card(benchmark)["backbone"]


def _backbone_class(backbone: str) -> type:
    from metazoo import models

    classes = {"conv4": models.Conv4, "resnet12": models.ResNet12, "mlp": models.MLP}
    if backbone not in classes:
        raise ValueError(f"--backbone {backbone}: unknown; choose one of {sorted(classes)}")
    return classes[backbone]


def _backbone_hints(backbone: str | None) -> dict[str, Any]:
    """The options of backbone ``backbone`` (constructor arguments and their types)."""
    if backbone is None:
        return {}
    hints = typing.get_type_hints(_backbone_class(backbone).__init__)
    return {k: v for k, v in hints.items() if k not in _BUILT_IN_ARGUMENTS}


def setting_targets(learner: str, backbone: str | None) -> dict[str, dict[str, Any]]:
    """Target name -> {key: type} for the learner, training, the sampler and the backbone."""
    from metazoo._registry import get_learner

    learner_hints = typing.get_type_hints(get_learner(learner).cls.Config)
    return {
        "learner": {k: v for k, v in learner_hints.items() if k not in _FILLED_BY_BENCHMARK},
        "train": typing.get_type_hints(TrainConfig),
        "sampler": dict(SAMPLER_KEYS),
        "backbone": _backbone_hints(backbone),
    }


def run_settings(
    learner: str, pairs: list[str], config_file: str | None, backbone: str | None
) -> RunSettings:
    """``config_file``'s run block, then ``pairs`` over it (key by key), every value typed."""
    block = load_run_block(config_file) if config_file else {}
    labels = {"learner": f"learner {learner!r}", **_LABELS}
    found = split_overrides(pairs, setting_targets(learner, backbone), labels)
    build = dict(block.get("build") or {})
    options = {**(build.get("backbone_options") or {}), **found["backbone"]}
    if options:
        build["backbone_options"] = options
    return RunSettings(
        learner={**(block.get("config") or {}), **found["learner"]},
        train={**(block.get("train") or {}), **found["train"]},
        sampler={**(block.get("sampler") or {}), **found["sampler"]},
        train_sampler=dict(block.get("train_sampler") or {}),
        build=build,
        eval=dict(block.get("eval") or {}),
    )


def _default_of(target: Any, key: str) -> str:
    if dataclasses.is_dataclass(target):
        field = {f.name: f for f in dataclasses.fields(target)}.get(key)
        if field is not None and field.default is not dataclasses.MISSING:
            return f" = {field.default!r}"
    elif callable(target):
        parameter = inspect.signature(target).parameters.get(key)
        if parameter is not None and parameter.default is not inspect.Parameter.empty:
            return f" = {parameter.default!r}"
    return ""


def describe_keys(learner: str | None, benchmark: str | None, backbone: str | None) -> str:
    """The ``key=value`` settings ``metazoo train`` takes, grouped, with types and defaults."""
    from metazoo._registry import get_learner

    groups: list[tuple[str, dict[str, Any], Any]] = []
    if learner:
        targets = setting_targets(learner, backbone_name(learner, benchmark, backbone))
        groups.append((f"learner {learner!r}", targets["learner"], get_learner(learner).cls.Config))
    groups.append(("training", typing.get_type_hints(TrainConfig), TrainConfig))
    groups.append(("sampler (every split)", dict(SAMPLER_KEYS), None))
    if learner and benchmark:
        chosen = backbone_name(learner, benchmark, backbone)
        if targets["backbone"]:
            owner = _backbone_class(chosen).__init__
            groups.append((f"backbone {chosen!r}", targets["backbone"], owner))
    lines = []
    for title, hints, owner in groups:
        lines.append(f"{title} keys:")
        for key, hint in hints.items():
            kind = getattr(hint, "__name__", None) or str(hint).replace("typing.", "")
            default = _default_of(owner, key) if owner is not None else ""
            lines.append(f"  {key}: {kind}{default}")
    if not learner:
        lines.append("(give LEARNER BENCHMARK before --help to list their keys too)")
    return "\n".join(lines)
