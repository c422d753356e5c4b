"""One resolution of a run's settings, for ``metazoo train``, Python and suite cells alike.

Every value of a run (learner config, training, sampler for every split and for the train split
only, build, evaluation) comes from the first of these, from the highest precedence down, that
sets it, and keeps the name of where it came from (``metazoo train L B --print-config``):

1. the command line (``key=value``, ``--seed``, ``--backbone``, ``--episodes``) or Python's
   ``overrides``;
2. a config file (``metazoo train --config FILE``: one settings block);
3. a preset or suite cell (its settings blocks merged, the cell's seed over them);
4. the learner card's ``benchmark_train`` for the benchmark (the paper's training settings);
5. the benchmark card (episode shape, ``meta_batch``, backbone, test episodes; the config fields
   it fills in: ``ways``, ``input_shape``, ``task``);
6. the learner card's ``benchmark_config`` for the benchmark, then its ``config``;
7. the learner's registered defaults (a variant's), then the dataclasses' defaults.
"""

from __future__ import annotations

import dataclasses
import functools
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from torch import nn

from metazoo._registry import get_learner
from metazoo.build import (
    benchmark_fills,
    build_learner,
    card_config_layers,
    learner_tasks,
    model_kind,
    train_defaults,
)
from metazoo.cards import benchmark_card
from metazoo.data.benchmarks import SAMPLER_OPTIONS
from metazoo.data.sampler import SamplerConfig
from metazoo.overrides import split_overrides
from metazoo.runs.settings import RUN_FACTS, SAMPLER_KEYS, SECTIONS, check_block, load_run_block
from metazoo.training.config import MOVED_TO_FAST, TrainConfig, with_moved_settings

__all__ = ["ResolvedRun", "resolve_run", "setting_targets", "backbone_name"]

#: Learner config fields the benchmark fills in; ``ways`` is a sampler key that also sizes the head.
FILLED_BY_BENCHMARK = ("ways", "input_shape", "task", "num_classes", "padded_head")
#: Backbone constructor arguments the builder fills in.
_BUILT_IN_ARGUMENTS = ("self", "in_channels", "image_size", "in_features", "out_features", "return")
_LABELS = {"train": "training", "sampler": "the sampler", "backbone": "the backbone"}
#: Former TrainConfig fields, still read (with a warning) as options of ``fast``.
_MOVED_HINTS = dict.fromkeys(MOVED_TO_FAST, bool)


@dataclass
class ResolvedRun:
    """A run's settings, resolved once.

    Attributes:
        learner: the registered learner.
        benchmark: the benchmark card.
        settings: section (``config``, ``train``, ``eval``, ``build``, ``sampler``,
            ``train_sampler``) -> the values passed on over what the builder, the trainer and the
            sampler take from the cards and defaults themselves.
        shown: section -> key -> ``(value, source)`` for every resolved value, those included.
    """

    learner: str
    benchmark: str
    settings: dict[str, dict[str, Any]]
    shown: dict[str, dict[str, tuple[Any, str]]]

    def section(self, name: str) -> dict[str, Any]:
        """A copy of the values passed on in section ``name``."""
        return dict(self.settings[name])

    @property
    def seed(self) -> int:
        return int(self.settings["train"].get("seed", 0))

    def build_learner(self, device: Any = None) -> nn.Module:
        """The learner, its head sized for the run's sampler ``ways``, seeded with the run's seed."""
        return build_learner(
            self.learner, self.benchmark, seed=self.seed, device=device,
            ways=self.settings["sampler"].get("ways"),  # a head for the run's ways, not the card's
            **self.settings["build"], **self.settings["config"],
        )  # fmt: skip

    def train_config(self, **facts: Any) -> TrainConfig:
        """The :class:`TrainConfig`, with the facts of this call (``checkpoint_dir``, ``resume``,
        ``device``) added."""
        return TrainConfig(**{**self.settings["train"], **facts})

    def sources(self) -> dict[str, dict[str, str]]:
        """Section -> key -> where the value came from."""
        return {s: {k: src for k, (_, src) in keys.items()} for s, keys in self.shown.items()}

    def describe(self) -> str:
        """Every resolved value and where it came from, one line each (``--print-config``)."""
        titles = {"config": f"learner {self.learner!r}", "train": "training",
                  "sampler": "sampler (every split)", "train_sampler": "sampler (train split)",
                  "build": "build", "eval": "evaluation"}  # fmt: skip
        lines = [f"{self.learner} on {self.benchmark}:"]
        for section in ("config", "train", "sampler", "train_sampler", "build", "eval"):
            if self.shown[section]:
                lines.append(f"{titles[section]}:")
                width = max(len(k) for k in self.shown[section])
                for key, (value, source) in self.shown[section].items():
                    lines.append(f"  {key:<{width}} = {value!r:<14} ({source})")
        return "\n".join(lines)


def backbone_name(learner: str, benchmark: str, chosen: str | None) -> str | None:
    """The backbone the run builds, None for a learner that builds its own network.

    Raises:
        ValueError: a backbone chosen for a learner without one.
    """
    if model_kind(learner) == "none":
        if chosen:
            raise ValueError(
                f"--backbone {chosen}: learner {learner!r} has no backbone (it builds its own "
                "network); drop --backbone"
            )
        return None
    return chosen or benchmark_card(benchmark)["backbone"]


def backbone_class(backbone: str) -> type:
    from metazoo import models

    classes = {"conv4": models.Conv4, "resnet12": models.ResNet12, "mlp": models.MLP}
    if backbone not in classes:
        raise ValueError(f"--backbone {backbone}: unknown; choose one of {sorted(classes)}")
    return classes[backbone]


@functools.cache
def _type_hints(owner: Any) -> dict[str, Any]:
    return typing.get_type_hints(owner)


def _backbone_hints(backbone: str | None) -> dict[str, Any]:
    """The options of backbone ``backbone`` (constructor arguments and their types)."""
    if backbone is None:
        return {}
    hints = _type_hints(backbone_class(backbone).__init__)
    return {k: v for k, v in hints.items() if k not in _BUILT_IN_ARGUMENTS}


def setting_targets(learner: str, backbone: str | None) -> dict[str, dict[str, Any]]:
    """Target -> {key: type}: the ``key=value`` settings of a run, for the learner, training, the
    sampler and the backbone (no facts of a call such as ``device``, no fields a benchmark fills)."""
    learner_hints = _type_hints(get_learner(learner).cls.Config)
    train_hints = _type_hints(TrainConfig)
    return {
        "learner": {k: v for k, v in learner_hints.items() if k not in FILLED_BY_BENCHMARK},
        "train": {k: v for k, v in train_hints.items() if k not in RUN_FACTS},
        "sampler": dict(SAMPLER_KEYS),
        "backbone": _backbone_hints(backbone),
    }


def _defaults(cls: type) -> dict[str, Any]:
    found = {}
    for f in dataclasses.fields(cls):
        if f.default is not dataclasses.MISSING:
            found[f.name] = f.default
        elif f.default_factory is not dataclasses.MISSING:
            found[f.name] = f.default_factory()
    return found


def _command_line(
    learner: str, benchmark: str, overrides: Sequence[str] | Mapping[str, Any], backbone: str | None
) -> dict[str, dict[str, Any]]:
    """The ``key=value`` overrides sorted into settings sections, every value typed."""
    pairs = list(overrides.items()) if isinstance(overrides, Mapping) else list(overrides)
    targets = setting_targets(learner, backbone_name(learner, benchmark, backbone))
    moved_targets = {**targets, "train": {**targets["train"], **_MOVED_HINTS}}
    found = split_overrides(pairs, moved_targets, {"learner": f"learner {learner!r}", **_LABELS})
    train = with_moved_settings(found["train"], "key=value settings")
    block = {"config": found["learner"], "train": train, "sampler": found["sampler"]}
    if found["backbone"]:
        block["build"] = {"backbone_options": found["backbone"]}
    return block


def _card_layers(
    learner: str, benchmark: str, ways: int | None, backbone: str | None
) -> list[tuple]:
    """``(source, blocks, sections passed on)`` from the defaults up to the learner card's
    ``benchmark_train``; the sections not passed on are applied by the builder, the trainer or
    the sampler themselves (shown, so that ``--print-config`` names them)."""
    bench = benchmark_card(benchmark)
    entry = get_learner(learner)
    # the card's backbone options are for the card's backbone (build_learner's rule)
    same = backbone in (None, bench["backbone"])
    options = (bench.get("backbone_options") or {}) if same else {}
    build = {"backbone": bench["backbone"], "backbone_options": options}
    sampler = {k: v for k, v in _defaults(SamplerConfig).items() if k in SAMPLER_KEYS}
    layers: list[tuple] = [
        ("default", {"config": _defaults(entry.cls.Config), "sampler": sampler,
                     "train": {k: v for k, v in _defaults(TrainConfig).items() if k not in RUN_FACTS},
                     "eval": {"seed": 0, "shots": [], "also_on": []}}, {"eval"}),
    ]  # fmt: skip
    if entry.defaults:
        layers.append((f"learner {learner} (registered defaults)", {"config": entry.defaults}, ()))
    layers += [
        (source, {"config": values}, ())
        for source, values in card_config_layers(learner, benchmark)
    ]
    dataset = bench.get("dataset_options") or {}
    shape = {k: bench[k] for k in ("ways", "shots", "queries") if bench.get(k) is not None}
    layers.append((
        f"benchmark card {benchmark}",
        {"config": benchmark_fills(learner, benchmark, ways),
         "sampler": {**shape, **{k: v for k, v in dataset.items() if k in SAMPLER_OPTIONS}},
         "train": {"meta_batch": bench.get("meta_batch")},
         "build": build if model_kind(learner) != "none" else {},
         "eval": {"episodes": bench["test_episodes"]}},
        {"eval"},
    ))  # fmt: skip
    paper = train_defaults(learner, benchmark)
    layers.append(
        (f"learner card {learner} (benchmark_train.{benchmark})", {"train": paper}, {"train"})
    )
    return layers


def resolve_run(
    learner: str,
    benchmark: str,
    *,
    preset: Mapping[str, Any] | None = None,
    preset_source: str = "preset",
    config_file: str | None = None,
    overrides: Sequence[str] | Mapping[str, Any] = (),
    overrides_source: str = "command line",
    seed: int | None = None,
    backbone: str | None = None,
    episodes: int | None = None,
) -> ResolvedRun:
    """Resolve every setting of ``learner`` on ``benchmark`` (the precedence in this module's
    docstring), keeping the source of each value.

    Args:
        learner: a registered learner.
        benchmark: a benchmark card that the learner supports.
        preset: a settings block (a suite cell's ``settings``: ``config``, ``train``, ...).
        preset_source: how ``--print-config`` names the preset (``suite paper-maml-omniglot``).
        config_file: a YAML file holding one settings block.
        overrides: ``key=value`` strings, or a mapping key -> value; ``train.``, ``learner.``,
            ``sampler.`` or ``backbone.`` picks the target when two share a key.
        overrides_source: how ``--print-config`` names the overrides.
        seed: the run's seed (training episodes, initialisation), over every other source.
        backbone: the benchmark's backbone instead (``conv4``, ``resnet12``, ``mlp``).
        episodes: test episodes.

    Raises:
        ValueError, TypeError: an unknown learner, benchmark or key (with suggestions), a value of
            the wrong type, or a benchmark the learner does not support.
    """
    get_learner(learner)  # unknown names suggest close ones
    task = benchmark_card(benchmark)["task"]
    if task not in learner_tasks(learner):
        raise ValueError(
            f"learner {learner!r} does not support {task} benchmarks like {benchmark!r}"
        )
    upper: list[tuple[str, dict[str, Any]]] = []
    if preset:
        upper.append((preset_source, check_block(dict(preset), preset_source)))
    if config_file:
        upper.append((f"config file {config_file}", load_run_block(config_file)))
    chosen = backbone or next(
        (
            b["build"]["backbone"]
            for _, b in reversed(upper)
            if (b.get("build") or {}).get("backbone")
        ),
        None,
    )
    top = _command_line(learner, benchmark, overrides, chosen)
    flags = {
        "train": {"seed": seed},
        "build": {"backbone": backbone},
        "eval": {"episodes": episodes},
    }
    for section, values in flags.items():
        top.setdefault(section, {}).update({k: v for k, v in values.items() if v is not None})
    upper.append((overrides_source, top))
    passed = {name: {} for name in SECTIONS}
    for _, block in upper:
        for name in SECTIONS:
            passed[name].update(block.get(name) or {})
    ways, chosen = passed["sampler"].get("ways"), passed["build"].get("backbone")
    layers = _card_layers(learner, benchmark, ways, chosen)
    layers += [(source, block, set(SECTIONS)) for source, block in upper]
    return _merge(learner, benchmark, layers)


def _merge(learner: str, benchmark: str, layers: list[tuple]) -> ResolvedRun:
    settings: dict[str, dict[str, Any]] = {name: {} for name in SECTIONS}
    shown: dict[str, dict[str, tuple[Any, str]]] = {name: {} for name in SECTIONS}
    for source, blocks, passed_on in layers:
        for name in SECTIONS:
            values = blocks.get(name) or {}
            if name in passed_on:
                settings[name].update(values)
            shown[name].update({k: (v, source) for k, v in values.items()})
    return ResolvedRun(learner, benchmark, settings, shown)
