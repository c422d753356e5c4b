"""The implementations the speed lab races: the peers' task loops and metazoo's executors.

A :class:`~lab.speed.contender.Contender` owns a copy of the shape's model and an Adam outer optimizer, and offers a
meta-training step, the meta-gradient at the current weights (for the correctness pre-check) and
an evaluation of a meta-batch. Builders raise :class:`Unavailable` with the reason when a
contender cannot run here (learn2learn not installed, CUDA-only variants on a CPU).
"""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Callable
from dataclasses import replace

import torch
from torch import Tensor, nn

import metazoo
import metazoo.experimental.lowerings  # noqa: F401  (the matmul and triton contenders)
from lab.speed import loops
from lab.speed.contender import Builder, Contender, Unavailable, precision
from lab.speed.learners import as_contender
from lab.speed.report import package_version
from lab.speed.shapes import SpeedShape
from metazoo.engine import (
    InnerLoop,
    MetaParams,
    accumulate_meta_gradient,
    parameters_of,
    raise_if_diverged,
    task_scores,
)
from metazoo.engine.fast import FAST_STEP_OPTIONS, FastMetaStep, FastOptions
from metazoo.episode import EpisodeBatch

__all__ = [
    "Builder",
    "Contender",
    "Unavailable",
    "CONTENDERS",
    "CUDA_VARIANTS",
    "build_contender",
    "precision",
    "precision_of",
    "train_overrides",
]


def _grads_of(model: nn.Module, accumulate: Callable[[], object]) -> list[Tensor]:
    model.zero_grad(set_to_none=True)
    accumulate()
    grads = [p.grad.detach().clone() for p in model.parameters()]
    model.zero_grad(set_to_none=True)
    return grads


def _loop_contender(
    name: str,
    description: str,
    model: nn.Module,
    shape: SpeedShape,
    backward: Callable[[EpisodeBatch], None],
    evaluate: Callable[[EpisodeBatch], Tensor],
) -> Contender:
    """A contender whose ``backward(batch)`` accumulates the meta-gradient into ``.grad``."""
    optimizer = torch.optim.Adam(model.parameters(), lr=shape.outer_lr)

    def train_step(batch: EpisodeBatch) -> None:
        optimizer.zero_grad(set_to_none=True)
        backward(batch)
        optimizer.step()

    return Contender(
        name,
        description,
        train_step,
        lambda b: _grads_of(model, lambda: backward(b)),
        evaluate,
        model=model,
    )


def _higher(model: nn.Module, shape: SpeedShape, example: EpisodeBatch) -> Contender:
    higher = loops.optional_module("higher")
    if higher is None:
        raise Unavailable("higher is not installed (pip install higher)")
    steps, test_steps, lr = shape.inner_steps, shape.test_inner_steps, shape.inner_lr
    return _loop_contender(
        "higher",
        f"higher {package_version('higher')} innerloop_ctx, task loop",
        model,
        shape,
        lambda b: loops.higher_backward(model, b, steps, lr),
        lambda b: loops.higher_evaluate(model, b, test_steps, lr),
    )


def _learn2learn(model: nn.Module, shape: SpeedShape, example: EpisodeBatch) -> Contender:
    l2l = loops.optional_module("learn2learn")
    if l2l is None:
        raise Unavailable("learn2learn is not importable (it does not build on Python 3.11+)")
    maml = l2l.algorithms.MAML(model, lr=shape.inner_lr, first_order=False)
    return _loop_contender(
        "learn2learn",
        f"learn2learn {package_version('learn2learn')} MAML.clone/adapt, task loop",
        maml,
        shape,
        lambda b: loops.learn2learn_backward(maml, b, shape.inner_steps),
        lambda b: loops.learn2learn_evaluate(maml, b, shape.test_inner_steps),
    )


def _torch_loop(model: nn.Module, shape: SpeedShape, example: EpisodeBatch) -> Contender:
    steps, test_steps, lr = shape.inner_steps, shape.test_inner_steps, shape.inner_lr
    return _loop_contender(
        "torch-loop",
        "plain PyTorch task loop (functional_call + autograd.grad)",
        model,
        shape,
        lambda b: loops.torch_loop_backward(model, b, steps, lr),
        lambda b: loops.torch_loop_evaluate(model, b, test_steps, lr),
    )


def _loops(shape: SpeedShape) -> tuple[InnerLoop, InnerLoop]:
    return InnerLoop(steps=shape.inner_steps), InnerLoop(steps=shape.test_inner_steps)


def _engine(executor: str) -> Builder:
    """metazoo's executors as the learners call them: ``engine.accumulate_meta_gradient`` (with
    the divergence check) and ``engine.task_scores``."""

    def build(model: nn.Module, shape: SpeedShape, example: EpisodeBatch) -> Contender:
        train, test = _loops(shape)

        def meta() -> MetaParams:
            return MetaParams(parameters_of(model), shape.inner_lr)

        def backward(batch: EpisodeBatch) -> None:
            results = accumulate_meta_gradient(model, batch, train, meta(), executor=executor)
            raise_if_diverged(results, train.steps)

        def evaluate(batch: EpisodeBatch) -> Tensor:
            return task_scores(model, batch, test, meta(), executor=executor)

        return _loop_contender(
            f"metazoo-{executor}",
            f"metazoo engine.accumulate_meta_gradient, executor={executor!r}",
            model,
            shape,
            backward,
            evaluate,
        )

    return build


def _maml_learner(model: nn.Module, shape: SpeedShape, example: EpisodeBatch) -> Contender:
    """The registered ``maml`` learner around the shape's model, as a user trains it."""
    learner = metazoo.create_learner(
        "maml",
        model,
        inner_lr=shape.inner_lr,
        inner_steps=shape.inner_steps,
        test_inner_steps=shape.test_inner_steps,
        executor="auto",
    )
    return as_contender(
        "maml-learner",
        "metazoo's registered maml learner as the trainer and the harness call it: the engine's "
        "MAML-family step, score_episodes (executor='auto')",
        learner,
        shape,
    )


def precision_of(name: str) -> str:
    """A contender's numeric mode, from its name: ``+tf32``, ``+3xtf32`` (Triton kernels' fp32
    products as three TF32 products, everything else fp32) and ``+bf16`` variants, else fp32."""
    for mode in ("tf32", "3xtf32", "bf16"):
        if name.endswith(f"+{mode}"):
            return mode
    return "fp32"


def _fast_variants(*variants: tuple[str, FastOptions]) -> dict[str, Builder]:
    """``{name: builder}`` of :func:`_fast` contenders, in the order given."""
    return {name: _fast(name, options) for name, options in variants}


#: How a contender's description names each fast-step option.
_PHRASES = {
    "compile": "torch.compile",
    "channels_last": "channels-last",
    "cudnn_benchmark": "cuDNN benchmark",
    "batched_weight_gradients": "batched weight gradients",
    "matmul_convolutions": "matmul convolutions",
    "triton_convolutions": "Triton implicit-GEMM convolutions",
}


def _fast(name: str, options: FastOptions) -> Builder:
    """metazoo's fast step (:class:`metazoo.engine.fast.FastMetaStep`) with ``options``, in the
    numeric mode its name says (:func:`precision_of`; ``3xtf32`` sets the Triton products)."""
    mode = precision_of(name)
    if mode == "3xtf32":
        options = replace(options, triton_fp32_products="tf32x3")

    def build(model: nn.Module, shape: SpeedShape, example: EpisodeBatch) -> Contender:
        device = next(model.parameters()).device
        cuda_only = options.cuda_graph or options.channels_last or options.triton_convolutions
        if (cuda_only or mode != "fp32") and device.type != "cuda":
            raise Unavailable("CUDA-only variant")
        learner = metazoo.create_learner(
            "maml",
            model,
            inner_lr=shape.inner_lr,
            inner_steps=shape.inner_steps,
            test_inner_steps=shape.test_inner_steps,
        )
        cuda = device.type == "cuda"
        optimizer = torch.optim.Adam(learner.parameters(), lr=shape.outer_lr, capturable=cuda)
        if cuda:  # a captured step allocates while it is built (warm-up, capture), not on replay
            torch.cuda.synchronize(device)
            torch.cuda.reset_peak_memory_stats(device)
            base = torch.cuda.memory_allocated(device)
        step = FastMetaStep(learner, optimizer, example, options)
        step.meta_gradient(example)  # builds the step (plan, compile, capture); weights kept
        plan = step.plan
        memory = {}
        if cuda:
            torch.cuda.synchronize(device)
            memory = {
                "build_peak_memory_mb": (torch.cuda.max_memory_allocated(device) - base) / 2**20,
                "held_memory_mb": (torch.cuda.memory_allocated(device) - base) / 2**20,
            }

        def evaluate(batch: EpisodeBatch) -> Tensor:
            autocast = (
                torch.autocast(device.type, options.autocast)
                if options.autocast is not None
                else contextlib.nullcontext()
            )
            with autocast:
                return task_scores(
                    model,
                    batch,
                    learner.inner_loop(training=False),
                    learner.meta_params(),
                    executor=plan.executor,
                    chunk_size=plan.chunk,
                )

        graph = step.graph
        return Contender(
            name,
            f"metazoo FastMetaStep: {plan.executor}"
            + (f" (chunks of {plan.chunk})" if plan.chunk else "")
            + (", whole step in one CUDA graph" if graph else "")
            + "".join(f", {_PHRASES[o]}" for o in FAST_STEP_OPTIONS if getattr(options, o))
            + (", fp32 products as 3xTF32" if options.triton_fp32_products == "tf32x3" else ""),
            step,
            step.meta_gradient,
            evaluate,
            precision=mode,
            note=plan.reason,
            details={
                "executor": plan.executor,
                "chunk": plan.chunk,
                "cuda_graph": graph,
                **{option: getattr(options, option) for option in FAST_STEP_OPTIONS},
                "triton_fp32_products": options.triton_fp32_products,
                **memory,
            },
            model=model,
        )

    build.options = options  # what train_overrides reads
    return build


#: Contenders run everywhere, in table order.
CONTENDERS: dict[str, Callable] = {
    "higher": _higher,
    "learn2learn": _learn2learn,
    "torch-loop": _torch_loop,
    # right after the loop it is compared with, so both run in the same conditions each round
    **_fast_variants(("metazoo-auto", FastOptions())),
    "metazoo-sequential": _engine("sequential"),
    "metazoo-vectorized": _engine("vectorized"),
    "maml-learner": _maml_learner,
}

_TRITON = FastOptions(
    compile=True, channels_last=True, batched_weight_gradients=True, triton_convolutions=True
)
#: Extra contenders on CUDA: graph capture, memory layout and reduced precision, each separately.
CUDA_VARIANTS: dict[str, Callable] = _fast_variants(
    ("torch-loop+graph", FastOptions("sequential", cuda_graph=True)),
    ("metazoo-vectorized+graph", FastOptions("vectorized", cuda_graph=True)),
    ("metazoo-auto+channels-last", FastOptions(channels_last=True)),
    ("metazoo-compiled", FastOptions(compile=True)),
    ("metazoo-compiled+channels-last", FastOptions(compile=True, channels_last=True)),
    (
        "metazoo-compiled+channels-last+cudnn-benchmark",
        FastOptions(compile=True, channels_last=True, cudnn_benchmark=True),
    ),
    (
        "metazoo-compiled+channels-last+batched-wgrad",
        FastOptions(compile=True, channels_last=True, batched_weight_gradients=True),
    ),
    (
        "metazoo-compiled+channels-last+matmul-conv",
        FastOptions(
            compile=True,
            channels_last=True,
            batched_weight_gradients=True,
            matmul_convolutions=True,
        ),
    ),
    ("metazoo-compiled+channels-last+triton-conv", _TRITON),
    ("metazoo-compiled+channels-last+triton-conv+3xtf32", _TRITON),
    ("metazoo-auto+tf32", FastOptions()),
    # what training may run (the training target does not rule TF32 out)
    ("metazoo-compiled+channels-last+tf32", FastOptions(compile=True, channels_last=True)),
    (
        "metazoo-compiled+channels-last+batched-wgrad+tf32",
        FastOptions(compile=True, channels_last=True, batched_weight_gradients=True),
    ),
    ("metazoo-compiled+channels-last+triton-conv+tf32", _TRITON),
    ("metazoo-auto+bf16", FastOptions(autocast=torch.bfloat16)),
)


def train_overrides(name: str) -> list[str] | None:
    """The ``metazoo train`` overrides that train with contender ``name``'s step
    (``fast_step=true`` plus these), or None when the trainer cannot set that step up (a forced
    executor or CUDA graph, autocast, or not a fast step at all)."""
    options = getattr({**CONTENDERS, **CUDA_VARIANTS}.get(name), "options", None)
    if options is None:
        return None
    chosen = {option: getattr(options, option) for option in FAST_STEP_OPTIONS}
    if options != FastOptions(**chosen):
        return None
    tf32_on = ["tf32=true"] if precision_of(name) == "tf32" else []
    return [f"{option}=true" for option, on in chosen.items() if on] + tf32_on


def build_contender(
    name: str,
    model: nn.Module,
    shape: SpeedShape,
    example: EpisodeBatch,
    builders: dict[str, Builder] | None = None,
) -> Contender:
    """Build contender ``name`` on a private copy of ``model`` (same initial weights for all).

    Args:
        name: a key of ``builders``, :data:`CONTENDERS` or :data:`CUDA_VARIANTS`.
        model: the shape's model, on the device the contender runs on.
        shape: the problem shape.
        example: a meta-batch of the shape (graph capture and memory planning use it).
        builders: extra contenders (your own implementation to race), by name.

    Raises:
        Unavailable: the contender cannot run here.
        KeyError: an unknown name.
    """
    known = {**CONTENDERS, **CUDA_VARIANTS, **(builders or {})}
    if name not in known:
        raise KeyError(f"unknown contender {name!r}; choose from {list(known)}")
    return known[name](copy.deepcopy(model), shape, example)
