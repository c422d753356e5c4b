"""Where data and caches live: ``METAZOO_DATA`` and ``METAZOO_CACHE``, and the missing-data error."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["data_root", "cache_root", "MissingDataError", "require_dir"]


class MissingDataError(FileNotFoundError):
    """A dataset is not where it should be; the message says where it looked and how to get it."""


def data_root(root: str | os.PathLike | None = None) -> Path:
    """``root`` if given, else ``$METAZOO_DATA``, else ``~/.cache/metazoo/data``."""
    if root is not None:
        return Path(root)
    env = os.environ.get("METAZOO_DATA")
    return Path(env) if env else Path.home() / ".cache" / "metazoo" / "data"


def cache_root() -> Path:
    """``$METAZOO_CACHE`` or ``~/.cache/metazoo`` (decoded datasets are cached here)."""
    env = os.environ.get("METAZOO_CACHE")
    return Path(env) if env else Path.home() / ".cache" / "metazoo"


def require_dir(path: Path, dataset: str, fix: str) -> Path:
    """``path`` if it is a folder, else a :class:`MissingDataError` naming it and the fix.

    Args:
        path: the folder the dataset should be in.
        dataset: its name, for the message.
        fix: how to get it, e.g. the download command.
    """
    if path.is_dir():
        return path
    env = os.environ.get("METAZOO_DATA")
    raise MissingDataError(
        f"{dataset} not found: no folder {path} (METAZOO_DATA is "
        f"{repr(env) if env else 'not set'}; set METAZOO_DATA to the folder that holds it). {fix}"
    )
