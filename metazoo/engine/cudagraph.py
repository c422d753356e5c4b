"""The whole meta-training step (meta-loss, backward, optimizer step) replayed from one CUDA graph.

A MAML step on small tasks is launch-bound: thousands of small kernels, each waiting on Python.
With static shapes, :class:`GraphedMetaStep` records the step once (``torch.cuda.CUDAGraph``) and
then replays it with a single launch; each new meta-batch is copied into static input buffers
that stay resident on the device.

Requirements on the captured step: no host synchronisation (no ``.item()``, no data-dependent
Python branching, no NaN checks that read values back), fixed shapes, and an optimizer built with
``capturable=True`` (Adam, AdamW, SGD). Where CUDA is absent the same object runs the step
eagerly through the same static buffers, so the bookkeeping is testable on a CPU.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import torch
from torch import Tensor

from metazoo.episode import EpisodeBatch

__all__ = ["GraphedMetaStep", "static_copy"]


def static_copy(batch: EpisodeBatch, channels_last: bool = False) -> EpisodeBatch:
    """Device-resident buffers shaped like ``batch``, filled with its values.

    Args:
        batch: ``support_x (T, N*K, C, H, W)``, ``query_x (T, N*Q, C, H, W)`` and labels.
        channels_last: lay out images so that every task's ``(B, C, H, W)`` slice is channels-last
            (NHWC), the layout cuDNN's fastest convolution kernels read.
    """

    def buffer(x: Tensor) -> Tensor:
        if channels_last and x.dim() == 5:
            t, b, c, h, w = x.shape
            out = torch.empty(t, b, h, w, c, dtype=x.dtype, device=x.device).permute(0, 1, 4, 2, 3)
            return out.copy_(x)
        return x.clone()

    return EpisodeBatch(
        buffer(batch.support_x),
        buffer(batch.support_y),
        buffer(batch.query_x),
        buffer(batch.query_y),
        batch.ways,
    )


def _optimizer_tensors(optimizer: torch.optim.Optimizer) -> list[Tensor]:
    return [v for state in optimizer.state.values() for v in state.values() if torch.is_tensor(v)]


class GraphedMetaStep:
    """One meta-training step, captured in a CUDA graph on first use and replayed after.

    Args:
        accumulate: ``batch -> detached meta-loss`` that adds the meta-gradient to the
            parameters' ``.grad`` (calling ``backward`` itself, once or per chunk of tasks). It
            must not synchronise with the host (see the module docstring).
        parameters: the parameters ``optimizer`` updates.
        optimizer: built with ``capturable=True`` when capturing (Adam keeps its step count on the
            device then).
        example: a meta-batch with the shapes of every later batch (its values are used for
            warm-up only).
        warmup: eager steps on a side stream before capture (cuDNN/cuBLAS pick and cache their
            kernels there; required by CUDA graph capture).
        capture: record a CUDA graph (default: when the parameters live on a CUDA device). With
            False the step runs eagerly through the same static buffers.
        channels_last: keep image buffers channels-last (see :func:`static_copy`).
        before_step: called with ``accumulate``'s output between the backward and the optimizer
            step (gradient clipping); it
            becomes part of the captured step, so it must not read values back to the host.

    The warm-up steps change the weights and the optimizer state; both are restored afterwards
    (in place, so the graph's addresses stay valid), so the object starts from the caller's state.
    """

    def __init__(
        self,
        accumulate: Callable[[EpisodeBatch], Tensor],
        parameters: Iterable[Tensor],
        optimizer: torch.optim.Optimizer,
        example: EpisodeBatch,
        *,
        warmup: int = 3,
        capture: bool | None = None,
        channels_last: bool = False,
        before_step: Callable[[Tensor], None] | None = None,
    ):
        self.accumulate = accumulate
        self.before_step = before_step
        self.parameters = [p for p in parameters if p.requires_grad]
        self.optimizer = optimizer
        device = self.parameters[0].device
        self.capture = device.type == "cuda" if capture is None else capture
        capturable = optimizer.defaults.get("capturable", isinstance(optimizer, torch.optim.SGD))
        if self.capture and not capturable:
            raise ValueError(
                "capturing the optimizer step needs an optimizer built with capturable=True, e.g. "
                "torch.optim.Adam(params, lr=1e-3, capturable=True); or pass capture=False"
            )
        self.channels_last = channels_last
        self.static = static_copy(example.to(device), channels_last)
        self.graph: torch.cuda.CUDAGraph | None = None
        self.static_loss: Tensor | None = None
        if self.capture:
            self._record(warmup)

    def _snapshot(self) -> tuple[list[Tensor], list[Tensor]]:
        return [p.detach().clone() for p in self.parameters], [
            t.clone() for t in _optimizer_tensors(self.optimizer)
        ]

    def _restore(self, snapshot: tuple[list[Tensor], list[Tensor]]) -> None:
        """Put weights back and the optimizer state to its pre-warm-up value, in place.

        State created during warm-up is zeroed: for Adam and SGD a zero state is a fresh one.
        """
        params, saved = snapshot
        with torch.no_grad():
            for p, value in zip(self.parameters, params):
                p.copy_(value)
            current = _optimizer_tensors(self.optimizer)
            for i, tensor in enumerate(current):
                if i < len(saved):
                    tensor.copy_(saved[i])
                else:
                    tensor.zero_()

    def _eager_step(self, batch: EpisodeBatch | None = None) -> Tensor:
        loss = self.accumulate(self.static if batch is None else batch)
        if self.before_step is not None:
            self.before_step(loss)
        self.optimizer.step()
        return loss

    def _record(self, warmup: int) -> None:
        snapshot = self._snapshot()
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            for _ in range(max(warmup, 1)):  # capturable Adam needs its state to exist
                self.optimizer.zero_grad(set_to_none=True)
                self._eager_step()
        torch.cuda.current_stream().wait_stream(side)
        self._restore(snapshot)
        # .grad must be None at capture so backward allocates it from the graph's memory pool.
        self.optimizer.zero_grad(set_to_none=True)
        self.graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(self.graph):
            self.static_loss = self._eager_step()

    def _load(self, batch: EpisodeBatch) -> EpisodeBatch:
        """Check ``batch`` has the captured shapes; copy it into the static buffers when they are
        read by a graph (or laid out channels-last); return what the step should read."""
        copy = self.graph is not None or self.channels_last
        for buffer, value in zip(
            (
                self.static.support_x,
                self.static.support_y,
                self.static.query_x,
                self.static.query_y,
            ),
            (batch.support_x, batch.support_y, batch.query_x, batch.query_y),
        ):
            if buffer.shape != value.shape:
                raise ValueError(
                    f"a captured step needs static shapes: got {tuple(value.shape)}, captured "
                    f"{tuple(buffer.shape)}; build another GraphedMetaStep for this shape"
                )
            if copy:
                buffer.copy_(value, non_blocking=True)
        return self.static if copy else batch

    def __call__(self, batch: EpisodeBatch) -> Tensor:
        """Run one meta-training step on ``batch`` (shaped as ``example``); returns the meta-loss.

        The returned scalar lives on the device (and, when captured, is overwritten by the next
        call): read it with ``float()`` only when you need it.
        """
        current = self._load(batch)
        if self.graph is not None:
            self.graph.replay()
            return self.static_loss
        self.optimizer.zero_grad(set_to_none=True)
        return self._eager_step(current).detach()

    def meta_gradient(self, batch: EpisodeBatch) -> list[Tensor]:
        """The meta-gradient the step computes on ``batch``, leaving weights and optimizer as they were.

        Returns:
            one tensor per parameter, shaped as the parameter.
        """
        snapshot = self._snapshot()
        self(batch)
        grads = [p.grad.detach().clone() for p in self.parameters]
        self._restore(snapshot)
        return grads
