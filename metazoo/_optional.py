"""Optional dependencies: imported when a feature needs them, with the extra to install when missing.

The core install is torch, torchvision, pyyaml, rich and pillow. The extras in ``pyproject.toml``
add ``plotting`` (matplotlib), ``oracle`` (higher) and ``kernels`` (triton, Linux only).
"""

from __future__ import annotations

import importlib
from types import ModuleType

__all__ = ["MissingExtraError", "require"]


class MissingExtraError(ImportError):
    """An optional dependency is not installed; the message names the extra that brings it."""


def require(module: str, extra: str, purpose: str) -> ModuleType:
    """Import ``module``, or raise :class:`MissingExtraError` naming ``metazoo[extra]``.

    Args:
        module: the module to import, e.g. ``"matplotlib.pyplot"``.
        extra: the extra of ``pyproject.toml`` that installs it, e.g. ``"plotting"``.
        purpose: what needs it, for the message, e.g. ``"metazoo plot"``.
    """
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as exc:
        top = module.split(".")[0]
        if exc.name is not None and exc.name != top and not exc.name.startswith(f"{top}."):
            raise  # the module is there but one of its own imports is missing: not ours to rename
        raise MissingExtraError(
            f"{purpose} needs {top}, which is not installed: pip install 'metazoo[{extra}]'"
        ) from exc
