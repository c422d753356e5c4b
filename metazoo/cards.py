"""YAML cards: what the registry knows about a learner (paper, numbers) or a benchmark (protocol).

Cards are edited in the checkout's ``registry/learners/<name>.yaml`` and
``registry/benchmarks/<name>.yaml``, and ship inside the package as ``metazoo.registry`` (package
data, read with ``importlib.resources``), so an installed wheel finds the same cards. Tables take
titles, citations and "paper" columns from them; nothing there is typed into a table by hand.
"""

from __future__ import annotations

import functools
import os
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from metazoo.learner import FAMILIES
from metazoo.overrides import did_you_mean

if TYPE_CHECKING:
    from importlib.resources.abc import Traversable

__all__ = [
    "CardError",
    "registry_dir",
    "learner_card",
    "display_name",
    "benchmark_card",
    "list_benchmark_cards",
    "list_learner_cards",
    "validate_learner_card",
    "validate_benchmark_card",
    "check_card",
    "load_card_file",
    "yaml_files",
]

MODEL_KINDS = ("classifier", "embedding", "none")
TASKS = ("classification", "regression")
METRICS = ("accuracy", "mse")

# field -> (required, allowed python types)
_LEARNER_FIELDS: dict[str, tuple[bool, tuple[type, ...]]] = {
    "name": (True, (str,)),
    "display_name": (False, (str,)),  # as a paper writes it (MAML, ProtoNet); tables show it
    "family": (True, (str,)),
    "title": (True, (str,)),
    "authors": (True, (str,)),
    "venue": (True, (str,)),
    "year": (True, (int,)),
    "bibtex": (True, (str,)),
    "model": (True, (str,)),
    "tasks": (True, (list,)),
    "summary": (False, (str,)),
    "config": (False, (dict,)),
    "benchmark_config": (False, (dict,)),
    "benchmark_train": (False, (dict,)),
    # backbone name -> options the learner's paper builds it with (the Relation Network's embedding)
    "backbone_options": (False, (dict,)),
    "results": (False, (dict,)),
}
#: per-benchmark sections of a learner card -> (whose fields they hold, an example)
_PER_BENCHMARK = {
    "benchmark_config": ("config", "{inner_lr: 0.4}"),
    "benchmark_train": ("TrainConfig", "{meta_batch: 32}"),
}
_RESULT_FIELDS: dict[str, tuple[bool, tuple[type, ...]]] = {
    "value": (True, (int, float)),
    "ci95": (False, (int, float)),
    "std": (False, (int, float)),
    "metric": (True, (str,)),
    "source": (True, (str,)),
    "verified": (True, (bool,)),
    "backbone": (False, (str,)),
    "note": (False, (str,)),
}
_BENCHMARK_FIELDS: dict[str, tuple[bool, tuple[type, ...]]] = {
    "name": (True, (str,)),
    "dataset": (True, (str,)),
    "task": (True, (str,)),
    "description": (True, (str,)),
    "metric": (True, (str,)),
    "ways": (False, (int,)),
    "shots": (True, (int,)),
    "queries": (True, (int,)),
    "test_ways": (False, (int,)),
    "test_shots": (False, (int,)),
    "test_queries": (False, (int,)),
    "test_episodes": (True, (int,)),
    "meta_batch": (True, (int,)),
    "backbone": (True, (str,)),
    "input_shape": (True, (list,)),
    "backbone_options": (False, (dict,)),
    "dataset_options": (False, (dict,)),
    "test_dataset": (False, (str,)),
    "test_dataset_options": (False, (dict,)),
    "protocol": (False, (str,)),
}


class CardError(ValueError):
    """A malformed card: the message names the file and the field."""


def registry_dir() -> Traversable:
    """The folder holding the ``learners/`` and ``benchmarks/`` cards and the built-in ``suites/``.

    ``METAZOO_REGISTRY`` (a folder path) overrides; otherwise the ``metazoo.registry`` package data:
    the checkout's ``registry/`` in an editable install, the copy inside the wheel otherwise. The
    result is a :class:`~importlib.resources.abc.Traversable` (a :class:`~pathlib.Path` on disk).
    """
    env = os.environ.get("METAZOO_REGISTRY")
    if env:
        return Path(env)
    return resources.files("metazoo.registry")


def load_card_file(path: str | Path | Traversable) -> dict[str, Any]:
    """Parse one YAML card (a path, or a file of the shipped registry); errors name the file."""
    if isinstance(path, str):
        path = Path(path)
    if not path.is_file():
        raise CardError(f"{path}: no such card file")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise CardError(f"{path}: not valid YAML ({exc})") from exc
    if not isinstance(data, dict):
        raise CardError(f"{path}: a card must be a YAML mapping, got {type(data).__name__}")
    return data


def yaml_files(folder: Traversable) -> list[Traversable]:
    """The ``*.yaml`` files of a registry folder, sorted by name (none when it does not exist)."""
    if not folder.is_dir():
        return []
    return sorted((f for f in folder.iterdir() if f.name.endswith(".yaml")), key=lambda f: f.name)


def _check_fields(data: dict, spec: dict, where: str) -> None:
    for key, (required, types) in spec.items():
        if key not in data:
            if required:
                raise CardError(f"{where}: missing required field {key!r}")
            continue
        value = data[key]
        wrong_bool = isinstance(value, bool) and bool not in types  # YAML true is an int in Python
        if not isinstance(value, types) or wrong_bool:
            names = " or ".join(t.__name__ for t in types)
            raise CardError(
                f"{where}: field {key!r} must be {names}, got {type(data[key]).__name__} {data[key]!r}"
            )
    unknown = sorted(set(data) - set(spec))
    if unknown:
        raise CardError(f"{where}: unknown field(s) {unknown}; allowed: {sorted(spec)}")


def _check_choice(data: dict, key: str, choices: tuple[str, ...], where: str) -> None:
    values = data[key] if isinstance(data[key], list) else [data[key]]
    for value in values:
        if value not in choices:
            raise CardError(
                f"{where}: field {key!r} has {value!r}; expected one of {list(choices)}"
            )


def validate_learner_card(data: dict[str, Any], where: str = "<card>") -> dict[str, Any]:
    """Check a learner card's fields and types; returns it unchanged or raises :class:`CardError`."""
    _check_fields(data, _LEARNER_FIELDS, where)
    _check_choice(data, "family", FAMILIES, where)
    _check_choice(data, "model", MODEL_KINDS, where)
    _check_choice(data, "tasks", TASKS, where)
    if not data["bibtex"].lstrip().startswith("@"):
        raise CardError(f"{where}: field 'bibtex' must hold a BibTeX entry starting with '@'")
    for section, (fields, example) in _PER_BENCHMARK.items():
        for bench, values in (data.get(section) or {}).items():
            if not isinstance(values, dict):
                raise CardError(
                    f"{where}: {section}.{bench} must be a mapping of {fields} fields to the "
                    f"paper's values for that benchmark, e.g. {example}"
                )
    for backbone, options in (data.get("backbone_options") or {}).items():
        if not isinstance(options, dict):
            raise CardError(
                f"{where}: backbone_options.{backbone} must be a mapping of that backbone's "
                "options to the paper's values, e.g. {downsampled_blocks: 2}"
            )
    for bench, result in (data.get("results") or {}).items():
        if not isinstance(result, dict):
            raise CardError(
                f"{where}: results.{bench} must be a mapping with value, metric, source, verified"
            )
        _check_fields(result, _RESULT_FIELDS, f"{where}: results.{bench}")
        _check_choice(result, "metric", METRICS, f"{where}: results.{bench}")
    return data


def validate_benchmark_card(data: dict[str, Any], where: str = "<card>") -> dict[str, Any]:
    """Check a benchmark card's fields and types; returns it unchanged or raises :class:`CardError`."""
    _check_fields(data, _BENCHMARK_FIELDS, where)
    _check_choice(data, "task", TASKS, where)
    _check_choice(data, "metric", METRICS, where)
    if data["task"] == "classification" and "ways" not in data:
        raise CardError(f"{where}: a classification benchmark needs 'ways'")
    return data


def check_card(path: str | Path) -> tuple[str, dict[str, Any]]:
    """Validate a card file of either kind (told apart by its fields). Returns ``(kind, data)``."""
    data = load_card_file(path)
    if "dataset" in data:
        return "benchmark", validate_benchmark_card(data, str(path))
    return "learner", validate_learner_card(data, str(path))


@functools.cache
def _cards(kind: str) -> dict[str, dict[str, Any]]:
    cards = {}
    for path in yaml_files(registry_dir() / kind):
        data = load_card_file(path)
        validate = validate_learner_card if kind == "learners" else validate_benchmark_card
        validate(data, str(path))
        stem = path.name.removesuffix(".yaml")
        if data["name"] != stem:
            raise CardError(
                f"{path}: field 'name' is {data['name']!r} but the file is named {stem!r}"
            )
        cards[stem] = data
    return cards


def list_learner_cards() -> list[str]:
    """Names of the learner cards shipped in ``registry/learners``."""
    return sorted(_cards("learners"))


def list_benchmark_cards() -> list[str]:
    """Names of the benchmark cards shipped in ``registry/benchmarks``."""
    return sorted(_cards("benchmarks"))


def display_name(learner: str) -> str:
    """How papers write the method (``MAML``, ``ProtoNet``): the card's ``display_name``, else
    the registered name."""
    try:
        return str(learner_card(learner).get("display_name") or learner)
    except (CardError, KeyError):
        return learner


def learner_card(name: str) -> dict[str, Any]:
    """The card of a built-in learner, or of a plugin that ships one (``card_path`` on its class)."""
    cards = _cards("learners")
    if name in cards:
        return cards[name]
    from metazoo._registry import card_path_of, get_learner

    path = card_path_of(get_learner(name))
    if path is None:
        raise CardError(
            f"learner {name!r} has no card: add registry/learners/{name}.yaml (or `card_path` on a plugin class)"
        )
    return validate_learner_card(load_card_file(path), str(path))


def benchmark_card(name: str) -> dict[str, Any]:
    """The card of a benchmark; unknown names list the known ones."""
    cards = _cards("benchmarks")
    if name not in cards:
        close = did_you_mean(name, cards, n=3)
        hint = f"did you mean {', '.join(map(repr, close))}? " if close else ""
        raise KeyError(
            f"unknown benchmark {name!r}; {hint}"
            f"known benchmarks: {', '.join(sorted(cards)) or '(none)'}"
        )
    return cards[name]
