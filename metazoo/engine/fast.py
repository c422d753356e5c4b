"""The fast meta-training step: automatic executor, bounded memory, compilation, CUDA graph, bf16.

:class:`FastMetaStep` runs the same meta-objective as :func:`metazoo.engine.adapt_and_query` (mean
over tasks of the query loss after the inner loop, BatchNorm with transductive batch statistics),
tuned for throughput:

* the executor comes from :func:`metazoo.engine.autoselect.plan_executor` (sequential on a CPU,
  vectorized in memory-bounded chunks on a GPU), and the backward runs per task or per chunk
  (``adapt_and_query(backward_scale=...)``), so at most one chunk's graph is alive;
* with ``compile=True`` the vectorized meta-gradient is one functional program
  (``torch.func.grad`` of ``vmap`` over tasks of the inner loop) handed to ``torch.compile``,
  which fuses the plain-ops BatchNorm and the elementwise work of all three differentiation
  orders into few kernels;
* nothing in the step reads a value back to the host (``check_finite=False``), so on CUDA the
  whole step (forward, both backward orders, optimizer) is captured once and replayed
  (:class:`GraphedMetaStep`);
* with ``batched_weight_gradients=True`` (and ``compile``) the per-task weight gradients of the
  convolutions are one batched matrix product instead of ``vmap``'s grouped convolution
  (:mod:`metazoo.engine.taskconv`), and with ``matmul_convolutions`` or ``triton_convolutions``
  the per-task convolutions and input gradients too (im2col products, or implicit-GEMM Triton
  kernels on CUDA, :mod:`metazoo.engine.implicit_gemm`);
* ``channels_last`` and bf16 autocast are options, reported separately by ``metazoo speed``.

The NaN check of ``adapt_and_query`` needs a host read, so it is not part of the step; check the
returned loss (``torch.isfinite``) when you log it.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import importlib.util
from dataclasses import dataclass
from functools import partial

import torch
from torch import Tensor, nn

from metazoo.engine.autoselect import ExecutorPlan, plan_executor, saved_tensor_bytes
from metazoo.engine.compiled import check_policy, compiled_meta_gradient
from metazoo.engine.cudagraph import GraphedMetaStep
from metazoo.engine.executors import adapt_and_query
from metazoo.engine.inner import InnerLoop, LearningRate
from metazoo.engine.taskconv import check_lowering
from metazoo.episode import EpisodeBatch

__all__ = [
    "FastMetaStep",
    "FastOptions",
    "accumulate_meta_gradient",
]


def accumulate_meta_gradient(
    model: nn.Module,
    batch: EpisodeBatch,
    loop: InnerLoop,
    lr: LearningRate,
    *,
    executor: str = "sequential",
    chunk: int | None = None,
) -> Tensor:
    """Add the meta-gradient of ``batch`` to the parameters' ``.grad``; no host synchronisation.

    Args:
        model: any ``nn.Module`` with BatchNorm or not.
        batch: T tasks; ``support_x (T, N*K, *x)``, ``query_x (T, N*Q, *x)``.
        loop: inner-loop settings (``bn_policy`` ``transductive`` or ``per_step``).
        lr: inner learning rate(s).
        executor: ``sequential`` (backward per task) or ``vectorized`` (backward per chunk).
        chunk: tasks per ``vmap`` call (None: all).

    Returns:
        the detached meta-loss: the mean over the T tasks of the query loss.
    """
    return _loss_and_metric(model, batch, loop, lr, executor, chunk)[0]


def _loss_and_metric(model, batch, loop, lr, executor, chunk) -> Tensor:
    """``accumulate_meta_gradient``'s work; returns ``(2,)``: mean query loss and metric."""
    check_policy(loop)
    if executor not in ("sequential", "vectorized"):
        raise ValueError(f"executor must be 'sequential' or 'vectorized', got {executor!r}")
    loop = dataclasses.replace(loop, ways=loop.ways or batch.ways)
    results = adapt_and_query(
        model,
        batch,
        loop,
        lr,
        executor=executor,
        chunk_size=chunk,
        backward_scale=1 / len(batch),
        check_finite=False,
    )
    return torch.stack([results.query_loss.mean(), results.metric.mean()])


def _check_triton(device: torch.device) -> None:
    if device.type != "cuda":
        raise ValueError(
            f"triton_convolutions=True runs Triton kernels on a CUDA device, and the model is on "
            f"{device}: leave it off there (batched_weight_gradients and matmul_convolutions run "
            "on any device)"
        )
    if importlib.util.find_spec("triton") is None:
        raise ValueError(
            "triton_convolutions=True needs the triton package, which this PyTorch install "
            "lacks: `pip install triton`, or leave the option off"
        )


@dataclass(frozen=True)
class FastOptions:
    """Speed options of :class:`FastMetaStep` (each reported separately by ``metazoo speed``)."""

    #: ``auto``, ``sequential`` or ``vectorized``.
    executor: str = "auto"
    #: tasks per vectorized chunk; None: chosen by ``auto`` from memory, else all tasks.
    chunk: int | None = None
    #: capture the step in a CUDA graph; None: when on CUDA.
    cuda_graph: bool | None = None
    #: channels-last image buffers and convolution weights.
    channels_last: bool = False
    #: autocast dtype (``torch.bfloat16``) or None for full precision.
    autocast: torch.dtype | None = None
    #: clip the meta-gradient's global norm to this value before the optimizer step (inside the
    #: captured step; no host read); None: no clipping.
    grad_clip: float | None = None
    #: let cuDNN time its convolution algorithms for the step's (static) shapes on first use
    #: (``torch.backends.cudnn.benchmark`` while the step runs, then restored).
    cudnn_benchmark: bool = False
    #: ``torch.compile`` the meta-gradient (:func:`.compiled.compiled_meta_gradient`; a float
    #: inner learning rate); the first step then takes the compile time (seconds to minutes).
    compile: bool = False
    #: with ``compile``: the convolutions' per-task weight gradients as one batched matrix product
    #: instead of ``vmap``'s grouped convolution (:mod:`metazoo.engine.taskconv`).
    batched_weight_gradients: bool = False
    #: with ``batched_weight_gradients``: the per-task convolutions and input gradients as batched
    #: matrix products too (im2col, col2im), so no grouped convolution is left.
    matmul_convolutions: bool = False
    #: with ``batched_weight_gradients``: the per-task convolutions, input and weight gradients
    #: as implicit-GEMM Triton kernels (:mod:`metazoo.engine.implicit_gemm`; CUDA only).
    triton_convolutions: bool = False
    #: with ``triton_convolutions``: how its kernels multiply fp32 with TF32 off, ``ieee`` (plain
    #: fp32) or ``tf32x3`` (three TF32 tensor-core products; errors of the order of fp32
    #: rounding, reported as its own precision mode).
    triton_fp32_products: str = "ieee"

    def __post_init__(self) -> None:
        for option, needs in (
            ("batched_weight_gradients", "compile"),
            ("matmul_convolutions", "batched_weight_gradients"),
            ("triton_convolutions", "batched_weight_gradients"),
        ):
            if getattr(self, option) and not getattr(self, needs):
                raise ValueError(f"{option}=True needs {needs}=True")
        if self.triton_convolutions and self.autocast is not None:
            raise ValueError(
                "triton_convolutions=True runs in the inputs' own precision and does not "
                "autocast: leave autocast=None with it, or use batched_weight_gradients alone"
            )
        if self.matmul_convolutions and self.triton_convolutions:
            raise ValueError(
                "matmul_convolutions and triton_convolutions are two ways to run the same "
                "convolutions; set one of them"
            )
        check_lowering(self.lowering, self.triton_fp32_products)

    @property
    def lowering(self) -> str | None:
        """How per-task convolutions run (``lowering`` of
        :func:`.compiled.compiled_meta_gradient`)."""
        if self.triton_convolutions:
            return "triton"
        if self.matmul_convolutions:
            return "matmul"
        return "grouped" if self.batched_weight_gradients else None


class FastMetaStep:
    """Meta-training steps of a MAML-style objective, as fast as the device allows.

    Args:
        model: the network being meta-trained (updated in place by ``optimizer``).
        loop: inner-loop settings.
        lr: inner learning rate(s).
        optimizer: the outer optimizer over ``model.parameters()``; ``capturable=True`` for a
            CUDA graph (``torch.optim.Adam(..., capturable=True)``).
        example: a meta-batch with the shapes of every later one.
        options: see :class:`FastOptions`.
    """

    def __init__(
        self,
        model: nn.Module,
        loop: InnerLoop,
        lr: LearningRate,
        optimizer: torch.optim.Optimizer,
        example: EpisodeBatch,
        options: FastOptions | None = None,
    ):
        options = options or FastOptions()
        device = next(model.parameters()).device
        if options.triton_convolutions:
            _check_triton(device)
        self.plan = self._plan(model, loop, lr, example, options, device)
        if options.channels_last:
            model.to(memory_format=torch.channels_last)
        self.model, self.loop, self.lr, self.options = model, loop, lr, options
        self.compiled = None
        if options.compile:
            chunk = self.plan.chunk if self.plan.executor == "vectorized" else 1
            loop = dataclasses.replace(loop, ways=loop.ways or example.ways)
            self.compiled = compiled_meta_gradient(
                model,
                loop,
                lr,
                len(example),
                chunk=chunk,
                lowering=options.lowering,
                fp32_products=options.triton_fp32_products,
            )
        graph = device.type == "cuda" if options.cuda_graph is None else options.cuda_graph
        self.runner = GraphedMetaStep(
            self._accumulate,
            model.parameters(),
            optimizer,
            example,
            capture=graph,
            channels_last=options.channels_last,
            before_step=self._clip if options.grad_clip is not None else None,
        )
        self.last_metric: Tensor | None = None

    @staticmethod
    def _plan(model, loop, lr, example, options, device) -> ExecutorPlan:
        if options.executor == "sequential":
            return ExecutorPlan("sequential", None, "requested")
        if options.executor == "vectorized":
            return ExecutorPlan("vectorized", options.chunk, "requested")
        if options.executor != "auto":
            raise ValueError(
                f"executor must be auto, sequential or vectorized, got {options.executor!r}"
            )
        task_bytes = None
        if device.type == "cuda":  # bound the chunk by memory: measure one task's saved tensors
            task_bytes = saved_tensor_bytes(partial(_one_task_loss, model, example, loop, lr))
        return plan_executor(len(example), device, task_bytes=task_bytes)

    def _clip(self) -> None:
        params = [p for p in self.model.parameters() if p.grad is not None]
        nn.utils.clip_grad_norm_(params, self.options.grad_clip, foreach=True)

    def _accumulate(self, batch: EpisodeBatch) -> Tensor:
        ctx = (
            torch.autocast(batch.query_x.device.type, self.options.autocast, cache_enabled=False)
            if self.options.autocast is not None
            else contextlib.nullcontext()
        )
        with ctx, _cudnn_benchmark(self.options.cudnn_benchmark):
            if self.compiled is not None:
                return self.compiled(batch)
            return _loss_and_metric(
                self.model, batch, self.loop, self.lr, self.plan.executor, self.plan.chunk
            )

    def __call__(self, batch: EpisodeBatch) -> Tensor:
        """One meta-training step on ``batch``; returns the detached meta-loss (on the device).

        The mean query metric of the same step (accuracy in %, or MSE) is then ``last_metric``.
        Both are device tensors that a captured step overwrites on the next call.
        """
        out = self.runner(batch)
        self.last_metric = out[1]
        return out[0]

    def meta_gradient(self, batch: EpisodeBatch) -> list[Tensor]:
        """The meta-gradient of ``batch`` at the current weights, one tensor per parameter."""
        return self.runner.meta_gradient(batch)


def _cudnn_benchmark(on: bool) -> contextlib.AbstractContextManager:
    """cuDNN's algorithm timing switched on (other cuDNN settings kept), or nothing."""
    if not on:
        return contextlib.nullcontext()
    cudnn = torch.backends.cudnn
    return cudnn.flags(
        enabled=cudnn.enabled,
        benchmark=True,
        deterministic=cudnn.deterministic,
        allow_tf32=cudnn.allow_tf32,
    )


def _one_task_loss(model: nn.Module, batch: EpisodeBatch, loop: InnerLoop, lr) -> Tensor:
    """The meta-loss of the first task of ``batch`` as one graph (for memory estimation).

    Built on a copy of the model: a graph on the real parameters would create their gradient
    accumulators on the current stream, which a later CUDA graph capture must not inherit.
    """
    loop = dataclasses.replace(loop, ways=loop.ways or batch.ways)
    one = batch.split(1)[0]
    results = adapt_and_query(copy.deepcopy(model), one, loop, lr, check_finite=False)
    return results.query_loss.sum()
