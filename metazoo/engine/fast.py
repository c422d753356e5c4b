"""The fast step of a MAML-family learner, an opt-in accelerator: compilation, CUDA graph.

By default the trainer steps the MAML family plainly (:mod:`metazoo.engine.plain`: the
meta-gradient accumulated task by task or chunk by chunk, then the optimizer step; no graph
object). :class:`FastMetaStep` computes the same meta-gradient of the learner's objective (the
mean over tasks of the query loss after the inner loop, or MAML++'s multi-step loss) and is
chosen with ``TrainConfig(fast=FastOptions(...))`` (``fast=true`` in settings). Its options,
:class:`FastOptions`, the one home of the speed options, change where the time goes, never the
gradient:

* the executor is the plain step's (:func:`metazoo.engine.plain.plan_step`: the one asked for,
  or ``auto``'s fastest measured on a copy of the learner; with ``compile`` the memory rule of
  :func:`metazoo.engine.autoselect.plan_executor` decides);
* with ``compile=True`` the vectorized meta-gradient is one functional program handed to
  ``torch.compile`` (:mod:`metazoo.engine.compiled`);
* nothing in the step reads a value back to the host, so on CUDA the whole step (forward, both
  backward orders, optimizer) is captured once per schedule phase and replayed
  (:class:`GraphedMetaStep`);
* with ``batched_weight_gradients=True`` (and ``compile``) the per-task weight gradients of the
  convolutions are one batched matrix product; it and the other lowerings
  (``matmul_convolutions``, ``triton_convolutions``) are experimental
  (:mod:`metazoo.experimental.taskconv`, imported when an option asks for them);
* ``channels_last`` and bf16 autocast are options, reported separately by the speed lab.

Schedules (MAML++'s first-order warm-up and multi-step loss) read the training step passed to
each call; a change of phase builds (and on CUDA captures) the step for the new phase.
"""

from __future__ import annotations

import contextlib
import importlib.util
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

import torch
from torch import Tensor, nn

from metazoo.engine.autoselect import ExecutorPlan
from metazoo.engine.compiled import check_policy, compiled_meta_gradient, experimental_lowerings
from metazoo.engine.cudagraph import GraphedMetaStep
from metazoo.engine.inner import InnerLoop
from metazoo.engine.plain import accumulate_step, plan_step, step_settings
from metazoo.episode import EpisodeBatch
from metazoo.learner import GradientLearner

__all__ = ["FastMetaStep", "FastOptions", "FAST_STEP_OPTIONS"]

#: The on/off switches of :class:`FastOptions` (the speed lab's flags, ``--compile`` ...).
FAST_STEP_OPTIONS = (
    "compile",
    "channels_last",
    "cudnn_benchmark",
    "batched_weight_gradients",
    "matmul_convolutions",
    "triton_convolutions",
)


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
            "lacks: `pip install 'metazoo[kernels]'`, or leave the option off"
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
    #: instead of ``vmap``'s grouped convolution (experimental:
    #: :mod:`metazoo.experimental.taskconv`).
    batched_weight_gradients: bool = False
    #: with ``batched_weight_gradients``: the per-task convolutions and input gradients as batched
    #: matrix products too (im2col, col2im), so no grouped convolution is left.
    matmul_convolutions: bool = False
    #: with ``batched_weight_gradients``: the per-task convolutions, input and weight gradients
    #: as implicit-GEMM Triton kernels (experimental, CUDA only:
    #: :mod:`metazoo.experimental.implicit_gemm`).
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
        if self.lowering is not None or self.triton_fp32_products != "ieee":
            experimental_lowerings().check(self.lowering, self.triton_fp32_products)

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
    """Meta-training steps of a MAML-family learner, as fast as the device allows.

    Args:
        learner: the learner being meta-trained (updated in place by ``optimizer``).
        optimizer: the outer optimizer over ``learner.parameters()``; ``capturable=True`` for a
            CUDA graph (``torch.optim.Adam(..., capturable=True)``).
        example: a meta-batch with the shapes of every later one.
        options: see :class:`FastOptions`.
        before_step: called with the step's ``(2,)`` detached (objective, metric) between the
            backward and the optimizer step (before ``options.grad_clip``); it may raise to stop
            the update (a non-finite loss) or average gradients across processes. It reads the
            host, so it is refused with a CUDA graph.
    """

    def __init__(
        self,
        learner: GradientLearner,
        optimizer: torch.optim.Optimizer,
        example: EpisodeBatch,
        options: FastOptions | None = None,
        before_step: Callable[[Tensor], None] | None = None,
    ):
        options = options or FastOptions()
        device = next(learner.parameters()).device
        if options.triton_convolutions:
            _check_triton(device)
        self.graph = device.type == "cuda" if options.cuda_graph is None else options.cuda_graph
        if self.graph and before_step is not None:
            raise ValueError("before_step reads the step on the host: use cuda_graph=False")
        if options.channels_last:
            learner.model.to(memory_format=torch.channels_last)
        self.learner, self.optimizer, self.options = learner, optimizer, options
        self.example, self.before_step = example, before_step
        self.weights_buffer: Tensor | None = None  # multi-step loss weights, read by the graph
        self.phases: dict[tuple, GraphedMetaStep] = {}
        self.last_metric: Tensor | None = None

    def _phase(self, step: int | None) -> GraphedMetaStep:
        """The step for the schedule phase at ``step`` (built on first use)."""
        loop, weights = step_settings(self.learner, step, self.example.query_x)
        if weights is not None:
            if self.weights_buffer is None:
                self.weights_buffer = weights.clone()
            self.weights_buffer.copy_(weights)
        key = (loop, weights is not None)
        if key not in self.phases:
            self.phases[key] = self._build(loop, weights is not None)
        return self.phases[key]

    def _build(self, loop: InnerLoop, multi_step: bool) -> GraphedMetaStep:
        if self.options.compile or self.graph:
            check_policy(loop)
        plan = self.plan = self._plan(loop, multi_step)
        if self.options.compile:
            chunk = plan.chunk if plan.executor == "vectorized" else 1
            ways = self.example.ways if loop.task == "classification" else None
            compiled = compiled_meta_gradient(
                self.learner, loop, len(self.example), ways, chunk=chunk, multi_step=multi_step,
                lowering=self.options.lowering, fp32_products=self.options.triton_fp32_products,
            )  # fmt: skip
            gradient = partial(self._compiled, compiled, multi_step)
        else:
            gradient = partial(self._eager, loop, plan, multi_step)
        return GraphedMetaStep(
            partial(self._accumulate, gradient),
            self.learner.parameters(),
            self.optimizer,
            self.example,
            capture=self.graph,
            channels_last=self.options.channels_last,
            before_step=self._before_step,
        )

    def _plan(self, loop: InnerLoop, multi_step: bool) -> ExecutorPlan:
        o = self.options
        return plan_step(
            self.learner, loop, self.example, executor=o.executor, chunk=o.chunk,
            compile=o.compile, channels_last=o.channels_last, autocast=o.autocast,
            step_weights=self.weights_buffer if multi_step else None, within=self._accumulate,
        )  # fmt: skip

    def _eager(self, loop: InnerLoop, plan: ExecutorPlan, multi_step: bool, batch) -> Tensor:
        weights = self.weights_buffer if multi_step else None
        return accumulate_step(self.learner, batch, loop, weights, plan)

    def _compiled(self, compiled, multi_step: bool, batch: EpisodeBatch) -> Tensor:
        return compiled(batch, self.weights_buffer if multi_step else None)

    def _before_step(self, out: Tensor) -> None:
        if self.before_step is not None:
            self.before_step(out)
        if self.options.grad_clip is not None:
            params = [p for p in self.learner.parameters() if p.grad is not None]
            nn.utils.clip_grad_norm_(params, self.options.grad_clip, foreach=True)

    def _accumulate(self, gradient, batch: EpisodeBatch) -> Tensor:
        ctx = (
            torch.autocast(batch.query_x.device.type, self.options.autocast, cache_enabled=False)
            if self.options.autocast is not None
            else contextlib.nullcontext()
        )
        with ctx, _cudnn_benchmark(self.options.cudnn_benchmark):
            return gradient(batch)

    def __call__(self, batch: EpisodeBatch, step: int | None = None) -> Tensor:
        """One meta-training step on ``batch`` at 0-based training ``step`` (None: past every
        schedule); returns the detached objective (on the device).

        The mean query metric of the same step (accuracy in %, or MSE) is then ``last_metric``.
        Both are device tensors that a captured step overwrites on the next call.
        """
        out = self._phase(step)(batch)
        self.last_metric = out[1]
        return out[0]

    def meta_gradient(self, batch: EpisodeBatch, step: int | None = None) -> list[Tensor]:
        """The meta-gradient of ``batch`` at the current weights, one tensor per parameter."""
        return self._phase(step).meta_gradient(batch)


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
