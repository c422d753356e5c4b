"""``metazoo train --tensorboard DIR``: training and validation curves as TensorBoard scalars.

Needs the ``tensorboard`` extra (``pip install 'metazoo[tensorboard]'``). Scalars are named
``train/<metric>`` (every step) and ``val/<metric>`` (each validation), against the step.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from metazoo._optional import require

__all__ = ["TensorBoardLog", "with_tensorboard"]

Callback = Callable[[dict[str, Any]], None]
_NOT_CURVES = ("kind", "step", "steps", "best", "metric")


class TensorBoardLog:
    """A training callback writing each event's numbers to a TensorBoard log folder."""

    def __init__(self, logdir: str):
        board = require("torch.utils.tensorboard", "tensorboard", "metazoo train --tensorboard")
        self.writer = board.SummaryWriter(log_dir=logdir)

    def __call__(self, event: dict[str, Any]) -> None:
        kind, step = event.get("kind"), event.get("step")
        if kind == "step":
            for key, value in event.items():
                if key not in _NOT_CURVES and isinstance(value, (int, float)):
                    self.writer.add_scalar(f"train/{key}", value, step)
        elif kind == "val":
            self.writer.add_scalar(f"val/{event['metric']}", event["mean"], step)
            self.writer.add_scalar(f"val/{event['metric']}_ci95", event["ci95"], step)
            self.writer.flush()

    def close(self) -> None:
        self.writer.close()


def with_tensorboard(callback: Callback, logdir: str | None) -> Callback:
    """``callback``, and a :class:`TensorBoardLog` in ``logdir`` too when one is given."""
    if not logdir:
        return callback
    log = TensorBoardLog(logdir)

    def both(event: dict[str, Any]) -> None:
        callback(event)
        log(event)
        if event.get("kind") == "step" and event.get("step") == event.get("steps"):
            log.writer.flush()

    return both
