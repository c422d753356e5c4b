"""Atomic file writes: a temporary file in the same folder, fsync, then ``os.replace``.

A reader (or a resumed run) never sees half a result file, checkpoint or cache.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

import torch

__all__ = ["write_atomic", "write_text_atomic", "write_json_atomic", "save_atomic", "json_safe"]


def json_safe(value: Any) -> Any:
    """``value`` with dict keys as strings, tuples as lists and other objects as their ``repr``,
    so ``json.dumps`` accepts it (configs and sampler overrides recorded in results)."""
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return repr(value)


def _umask() -> int:
    """The process's umask (read by setting it, then putting it back)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def write_atomic(path: str | Path, write: Callable[[IO], None], binary: bool = False) -> Path:
    """Call ``write(handle)`` on a temporary file next to ``path``, then move it into place.

    The file gets the mode a plain ``open(path, "w")`` would (0o666 less the umask), not the
    0o600 of a temporary file, so collaborators on a shared machine can read results.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.chmod(tmp, 0o666 & ~_umask())
        with os.fdopen(fd, "wb" if binary else "w") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def write_text_atomic(text: str, path: str | Path) -> Path:
    """Write ``text`` to ``path`` atomically."""
    return write_atomic(path, lambda handle: handle.write(text))


def write_json_atomic(data: dict[str, Any], path: str | Path) -> Path:
    """Write ``data`` as indented JSON to ``path`` atomically (serialised before the file opens)."""
    return write_text_atomic(json.dumps(data, indent=1), path)


def save_atomic(obj: Any, path: str | Path) -> Path:
    """``torch.save(obj)`` to ``path`` atomically."""
    return write_atomic(path, lambda handle: torch.save(obj, handle), binary=True)
