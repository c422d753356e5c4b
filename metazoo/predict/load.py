"""``load_learner``: a trained learner back from its run folder or checkpoint, ready to predict.

The checkpoint names the learner, its config, the benchmark it was built for, how it was built and
the distribution that provided it; the learner is rebuilt with :func:`metazoo.build_learner` (so
plugins load the same way as built-ins) and given the checkpoint's weights.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from torch import nn

from metazoo._registry import LearnerEntry, get_learner, plugin_errors
from metazoo.build import build_learner
from metazoo.overrides import typed_values
from metazoo.training.checkpoint import load_checkpoint

__all__ = ["LearnerNotInstalledError", "find_checkpoint", "load_learner", "load_run"]

#: The checkpoints a run folder holds, preferred first.
CHECKPOINT_NAMES = ("best.pt", "last.pt")


class LearnerNotInstalledError(RuntimeError):
    """A checkpoint of a learner that no installed package registers; says what to install."""


def find_checkpoint(run: str | Path) -> Path:
    """The checkpoint of ``run``: the file itself, ``best.pt`` (else ``last.pt``) in a run folder,
    or in the folder a run's record names (a suite cell's ``<cell>__<env>.json``, a run folder's
    ``result.json``).

    Raises:
        FileNotFoundError: no such file, or a folder holding neither checkpoint.
    """
    path = Path(run)
    if path.suffix == ".json" and path.is_file():
        record = json.loads(path.read_text())
        if not (isinstance(record, dict) and record.get("checkpoints")):
            raise FileNotFoundError(
                f"{path} is not a run's record (it names no checkpoints folder); give a run "
                "folder, a suite cell's result file or a checkpoint file"
            )
        path = path.parent / record["checkpoints"]
    if path.is_dir():
        found = [path / n for n in CHECKPOINT_NAMES if (path / n).is_file()]
        if not found:
            raise FileNotFoundError(
                f"no checkpoint in {path}: it holds neither best.pt nor last.pt; train first "
                f"(`metazoo train LEARNER BENCHMARK --out {path}`) or give the path of a .pt file"
            )
        return found[0]
    if not path.is_file():
        raise FileNotFoundError(
            f"no run folder or checkpoint at {path}: give the folder `metazoo train --out` wrote "
            "(holding best.pt or last.pt) or a checkpoint file"
        )
    return path


def _not_installed(name: str, ckpt: dict[str, Any], path: Path) -> LearnerNotInstalledError:
    failed = [e for e in plugin_errors() if e.entry_point == name]
    if failed:
        return LearnerNotInstalledError(
            f"{path} holds learner {name!r}, whose plugin from {failed[0].distribution!r} is "
            f"installed but failed to load ({failed[0].error}); fix or reinstall that package"
        )
    dist = ckpt.get("learner_distribution") or {}
    if dist.get("name"):
        version = dist.get("version")
        pin, which = (f"=={version}", f" {version}") if version else ("", "")
        return LearnerNotInstalledError(
            f"{path} holds learner {name!r} from the distribution {dist['name']!r}{which}, which "
            f"is not installed here: `pip install {dist['name']}{pin}`, then load it again"
        )
    return LearnerNotInstalledError(
        f"{path} holds learner {name!r}, which is not installed here, and the checkpoint does "
        "not record which package provided it (it predates that record): install the plugin "
        f"package that registers {name!r} (`metazoo ls` lists the learners installed)"
    )


def _entry(ckpt: dict[str, Any], path: Path) -> LearnerEntry:
    try:
        return get_learner(ckpt["learner"])
    except KeyError:
        raise _not_installed(ckpt["learner"], ckpt, path) from None


def load_run(
    run: str | Path, device: torch.device | str | None = None, *, trust: bool = False
) -> tuple[nn.Module, dict]:
    """``(learner, checkpoint)``: :func:`load_learner`'s learner and the checkpoint it came from
    (``benchmark``, ``step``, configs, ...)."""
    path = find_checkpoint(run)
    ckpt = load_checkpoint(path, trust=trust)
    entry = _entry(ckpt, path)
    config = typed_values(entry.cls.Config, ckpt["learner_config"])
    build = (ckpt.get("metadata") or {}).get("build") or {}
    learner = build_learner(
        ckpt["learner"], ckpt["benchmark"], seed=None, device=device, **build, **config
    )
    learner.load_state_dict(ckpt["learner_state"])
    learner.eval()
    return learner, {**ckpt, "path": str(path)}


def load_learner(
    run: str | Path, device: torch.device | str | None = None, *, trust: bool = False
) -> nn.Module:
    """The trained learner of a run, with its config and weights, in ``eval()`` mode.

    Args:
        run: a run folder written by ``metazoo train`` / :func:`metazoo.train` with
            ``checkpoint_dir`` (``best.pt`` is taken, else ``last.pt``), or a checkpoint file.
        device: where to put the learner (default: the CPU).
        trust: load a checkpoint holding arbitrary Python objects (unpickling it can run code):
            only for a file you made yourself. Without it, only tensors and plain values load.

    Raises:
        FileNotFoundError: no checkpoint there (says how to write one).
        UnsafeCheckpointError: the file needs ``trust=True``; says why and how to convert it.
        LearnerNotInstalledError: the learner's plugin is not installed (names its distribution
            when the checkpoint records it).
    """
    return load_run(run, device, trust=trust)[0]
