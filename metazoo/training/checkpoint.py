"""Checkpoints written atomically, with everything a resumed run needs to match an uninterrupted one.

A checkpoint holds the learner's weights, the optimizer and scheduler states, the step (which is also
the sampler position: step ``s`` trains on ``sampler.batch(s, meta_batch)``), torch's CPU and CUDA
RNG states, the best weights so far, the history and both configs, and the distribution that
provided the learner (so that loading it where that plugin is missing can say what to install).

Everything in it is a tensor, a plain Python value (``None``, bool, int, float, str) or a dict, list
or tuple of those: configs are stored as dicts and rebuilt from them, RNG states as byte tensors.
So checkpoints load with ``torch.load(weights_only=True)``, which unpickles no other object and so
runs no code from the file: a shared run folder is safe to load. A file that needs more (one made by
other code, or tampered with) is refused by :func:`load_checkpoint` unless ``trust=True``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import enum
import os
import pickle
import re
import signal
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import torch

from metazoo._atomic import save_atomic
from metazoo._registry import get_learner

__all__ = [
    "save_atomic",
    "load_checkpoint",
    "UnsafeCheckpointError",
    "storable",
    "convert_checkpoint",
    "save_checkpoint",
    "rng_state",
    "restore_rng",
    "learner_distribution",
    "FORMAT",
    "RUN_FILES",
    "run_files",
    "RunFolderInUseError",
    "FolderWords",
    "PYTHON_WORDS",
    "claim_run_folder",
    "StopRequest",
    "stop_requests",
]

#: The files a training run leaves in its folder (the CLI adds ``result.json``).
RUN_FILES = ("last.pt", "best.pt", "result.json")

#: Version of the checkpoint layout, checked on load.
FORMAT = 1


class UnsafeCheckpointError(pickle.UnpicklingError, ValueError):
    """A checkpoint that holds more than tensors and plain values: loading it would run code."""


def _refusal(path: Path, reason: str) -> UnsafeCheckpointError:
    convert = f"from metazoo.training.checkpoint import convert_checkpoint; convert_checkpoint({str(path)!r})"
    return UnsafeCheckpointError(
        f"{path} was refused: it holds Python objects beyond tensors and plain values, and "
        f"unpickling them could run any code ({reason}). metazoo's own checkpoints never need "
        "that. Load it only if you made it yourself: trust=True in Python (load_checkpoint, "
        "load_learner), --trust-checkpoint on the command line (metazoo predict, eval, "
        "per-source), or convert it once into a file that loads safely (for --resume too): "
        f'python -c "{convert}"'
    )


def load_checkpoint(
    path: str | Path, map_location: Any = "cpu", *, trust: bool = False
) -> dict[str, Any]:
    """Read a checkpoint written by the trainer; errors say what the file is missing.

    Args:
        path: a ``last.pt`` or ``best.pt``.
        map_location: where tensors go (``torch.load``'s argument).
        trust: unpickle any object the file holds (``weights_only=False``): only for a file you
            made yourself, since unpickling can run code. Without it only tensors and plain
            values are read (``weights_only=True``).

    Raises:
        FileNotFoundError: no such file (says how to write one).
        UnsafeCheckpointError: the file needs the unsafe loader; says how to load it knowingly.
        ValueError: the file is not a metazoo checkpoint.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"no checkpoint at {path}; train into that folder first "
            "(`metazoo train ... --out FOLDER`, or TrainConfig.checkpoint_dir in Python)"
        )
    if trust:  # the one unsafe load: asked for by name, for the user's own file
        data = torch.load(path, map_location=map_location, weights_only=False)
    else:
        try:
            data = torch.load(path, map_location=map_location, weights_only=True)
        except pickle.UnpicklingError as error:
            found = re.search(r"WeightsUnpickler error: (.+?\.)(\s|$)", str(error))
            reason = found.group(1) if found else str(error).splitlines()[0]
            raise _refusal(path, reason) from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise ValueError(
            f"{path} is not a metazoo checkpoint (format {FORMAT}); it was not written by "
            "metazoo.training.train"
        )
    return data


def storable(value: Any) -> Any:
    """``value`` in the types ``torch.load(weights_only=True)`` reads back: tensors, plain values
    and dicts, lists and tuples of them. Paths become strings, enums their values, dataclasses
    dicts, NumPy scalars and arrays Python numbers and tensors; anything else its ``repr``."""
    if value is None or isinstance(value, (bool, int, float, str, torch.Tensor)):
        return value
    if isinstance(value, dict):
        return {storable(k): storable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        # a tuple subclass (torch.Size, a namedtuple) becomes a list: its class is a global
        items = [storable(v) for v in value]
        return tuple(items) if type(value) is tuple else items
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if isinstance(value, enum.Enum):
        return storable(value.value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return storable(dataclasses.asdict(value))
    if type(value).__module__ == "numpy":
        return storable(value.item() if value.ndim == 0 else torch.from_numpy(value))
    return repr(value)


def save_checkpoint(state: dict[str, Any], path: str | Path) -> Path:
    """Write ``state`` (made :func:`storable`) to ``path`` atomically: it loads with the safe loader."""
    return save_atomic(storable(state), path)


def convert_checkpoint(path: str | Path, out: str | Path | None = None) -> Path:
    """Rewrite a checkpoint you trust (it is loaded with ``trust=True``) so that it loads safely:
    every value made :func:`storable`; written to ``out``, by default over ``path``."""
    data = load_checkpoint(path, trust=True)
    target = Path(out) if out is not None else Path(path)
    save_checkpoint(data, target)
    load_checkpoint(target)  # proves the new file loads without trust
    return target


def learner_distribution(name: str) -> dict[str, str | None] | None:
    """``{"name", "version"}`` of the distribution that provides learner ``name`` (``metazoo``
    for built-ins); None for a learner that is not registered (a throwaway test class)."""
    try:
        provider = get_learner(name).provider
    except KeyError:
        return None
    try:
        version = metadata.version(provider)
    except metadata.PackageNotFoundError:  # run from a source tree that is not installed
        version = None
    return {"name": provider, "version": version}


def rng_state() -> dict[str, Any]:
    """torch's CPU RNG state and, where CUDA is initialised, every device's."""
    state: dict[str, Any] = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng(state: dict[str, Any]) -> None:
    """Undo :func:`rng_state`."""
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def run_files(folder: str | Path) -> list[Path]:
    """The files of an earlier run in ``folder`` (:data:`RUN_FILES` that exist), in that order."""
    return [Path(folder) / name for name in RUN_FILES if (Path(folder) / name).is_file()]


class RunFolderInUseError(FileExistsError):
    """A run folder already holds a run, and neither resuming nor overwriting it was asked for."""


@dataclass(frozen=True)
class FolderWords:
    """How :func:`claim_run_folder`'s messages name the folder and the two ways out: Python's
    ``TrainConfig`` fields by default, the command line's flags in ``metazoo train``."""

    folder: str = "checkpoint_dir"
    resume: str = "resume=True"
    overwrite: str = "overwrite=True"
    #: the verb before ``resume``: "set resume=True", "add --resume".
    verb: str = "set"


PYTHON_WORDS = FolderWords()


def claim_run_folder(
    folder: str | Path,
    resume: bool,
    overwrite: bool,
    *,
    resume_needs_checkpoint: bool = False,
    words: FolderWords = PYTHON_WORDS,
) -> None:
    """Refuse to lose a run: a folder holding one (:data:`RUN_FILES`) is used only to resume it or,
    with ``overwrite``, after deleting its files; with ``resume_needs_checkpoint``, resuming a
    folder without ``last.pt`` is an error too (``metazoo train --resume``).

    Raises:
        ValueError: ``resume`` and ``overwrite`` both given, or nothing to resume.
        RunFolderInUseError: the folder holds a run; names its files and the ways out.
    """
    folder = Path(folder)
    found = run_files(folder)
    if resume and overwrite:
        raise ValueError(f"{words.resume} and {words.overwrite} contradict each other; give one")
    if resume and resume_needs_checkpoint and not (folder / "last.pt").is_file():
        raise ValueError(
            f"{words.resume}: {folder} holds no last.pt to resume from; drop {words.resume} to "
            f"start a new run there, or give the {words.folder} folder of the run to continue"
        )
    if found and not (resume or overwrite):
        names = ", ".join(p.name for p in found)
        raise RunFolderInUseError(
            f"{words.folder} {folder} already holds a run ({names}); {words.verb} {words.resume} "
            f"to continue it, {words.overwrite} to delete it and start over, or give another "
            f"{words.folder} folder"
        )
    if overwrite:
        for path in found:
            path.unlink(missing_ok=True)  # missing_ok: another rank may have deleted it first


class StopRequest:
    """Whether SIGINT or SIGTERM asked training to stop; see :func:`stop_requests`."""

    def __init__(self) -> None:
        self.signal_name: str | None = None

    def __call__(self, signum: int, frame: Any) -> None:
        if self.signal_name is not None:  # a second signal: stop now, without a checkpoint
            raise KeyboardInterrupt
        self.signal_name = signal.Signals(signum).name


@contextlib.contextmanager
def stop_requests() -> Iterator[StopRequest]:
    """While active, the first SIGINT or SIGTERM only sets ``request.signal_name`` (the loop then
    checkpoints and stops between two steps); a second one raises ``KeyboardInterrupt``.

    Signal handlers belong to the main thread: elsewhere the request never fires.
    """
    request = StopRequest()
    if threading.current_thread() is not threading.main_thread():
        yield request
        return
    previous = {sig: signal.signal(sig, request) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield request
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
