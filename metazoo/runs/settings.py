"""The blocks a run's settings come in (a suite's, a preset's, ``metazoo train --config FILE``'s),
checked one way: ``config`` (learner config), ``train`` (TrainConfig fields), ``eval``, ``build``,
``sampler`` (every split) and ``train_sampler`` (the train split only)."""

from __future__ import annotations

import dataclasses
import typing
from pathlib import Path
from typing import Any

from metazoo.data.sampler import SamplerConfig
from metazoo.overrides import load_yaml_text, typed_values
from metazoo.training.config import TrainConfig, with_moved_settings

__all__ = [
    "SECTIONS",
    "SAMPLER_KEYS",
    "EVAL_KEYS",
    "BUILD_KEYS",
    "RUN_FACTS",
    "check_block",
    "load_run_block",
    "merge_blocks",
]

#: What a settings block may hold.
SECTIONS = ("config", "train", "eval", "build", "sampler", "train_sampler")
#: Evaluation settings: test episodes, their seed, more shots, more benchmarks (``also_on``), a
#: second set of test episodes (``check_seed``).
EVAL_KEYS = ("episodes", "seed", "shots", "also_on", "check_seed")
BUILD_KEYS = ("backbone", "backbone_options")
#: Sampler options a run may set, with their types: :class:`SamplerConfig`'s fields, except where
#: the episodes live (the run's device decides that).
SAMPLER_KEYS: dict[str, Any] = {
    name: hint
    for name, hint in typing.get_type_hints(SamplerConfig).items()
    if name in {f.name for f in dataclasses.fields(SamplerConfig)} and name != "device"
}
#: TrainConfig fields that are facts of one call, not settings: ``metazoo train`` sets them from
#: its flags (``--out``, ``--resume``, ``--overwrite``, ``--device``), a suite from its folder.
RUN_FACTS = ("checkpoint_dir", "resume", "overwrite", "device")


def check_block(block: Any, where: str) -> dict[str, Any]:
    """``block`` checked (known sections and keys) and typed (``lr: 1e-3`` is a float).

    Raises:
        ValueError: an unknown section or key, naming ``where`` and what is allowed.
        TypeError: a value of the wrong type, naming ``where``.
    """
    if block is None:
        return {}
    if not isinstance(block, dict):
        raise ValueError(f"{where}: expected a mapping of {list(SECTIONS)}, got {block!r}")
    unknown = sorted(set(block) - set(SECTIONS) - {"benchmark", "learners", "variant"})
    if unknown:
        raise ValueError(f"{where}: unknown key(s) {unknown}; allowed: {list(SECTIONS)}")
    train_fields = {f.name for f in dataclasses.fields(TrainConfig)}
    if block.get("train"):  # former fields, with a warning saying the new spelling
        block = {**block, "train": with_moved_settings(block["train"], f"{where}.train")}
    for name, allowed in (("train", train_fields), ("eval", EVAL_KEYS), ("build", BUILD_KEYS)):
        bad = sorted(set(block.get(name) or {}) - set(allowed))
        if bad:
            raise ValueError(f"{where}.{name}: unknown key(s) {bad}; allowed: {sorted(allowed)}")
    if block.get("train"):  # typed as `metazoo train` overrides are: `lr: 1e-3` is a float
        block = {**block, "train": typed_values(TrainConfig, block["train"], f"{where}.train")}
    for name in ("sampler", "train_sampler"):
        if block.get(name):
            block = {**block, name: typed_values(SAMPLER_KEYS, block[name], f"{where}.{name}")}
    return block


def load_run_block(path: str | Path) -> dict[str, Any]:
    """A file holding one settings block, checked as a suite's are: ``metazoo train --config``."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"--config {path}: no such file; give a YAML file like a suite's run"
        )
    data = load_yaml_text(path.read_text(encoding="utf-8"), str(path)) or {}
    return check_block(data, str(path))


def merge_blocks(*blocks: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Settings blocks merged section by section, later blocks winning key by key."""
    merged: dict[str, dict[str, Any]] = {name: {} for name in SECTIONS}
    for block in blocks:
        for name in SECTIONS:
            merged[name].update(block.get(name) or {})
    return merged
