"""Executors: run :func:`~metazoo.engine.task.task_objective` over the tasks of a meta-batch.

Two executors with the same semantics (checked to 1e-8 relative in float64 by the tests):

``sequential``
    One task at a time with ``torch.autograd.grad``; lowest memory; the reference.
``vectorized``
    ``torch.func.vmap`` over the tasks of a chunk of ``chunk_size`` tasks, inner gradients with
    ``torch.func.grad``. BatchNorm goes through :class:`~metazoo.engine.batchnorm.BatchNormMode`
    (plain-ops statistics), which keeps second-order meta-gradients exact under ``vmap``.
``auto``
    Here, for one call with nothing to compare: sequential on the CPU, for meta-batches under 4
    tasks and for ``bn_policy='running'`` while training; vectorized otherwise. The trainer's
    step (:func:`metazoo.engine.fast.plan_step`) and evaluation (:func:`metazoo.engine.objective.task_scores`) resolve
    ``auto`` by measurement first (:mod:`metazoo.engine.measured`).

Entry points: :func:`run_tasks` (a meta-batch, per-task results), :func:`backward_in_chunks`
(the same with the backward taken chunk by chunk, so memory holds one chunk's graph),
:func:`raise_if_diverged`, and :func:`adapt` / :func:`predict` (one task, for
``MetaLearner.adapt`` / ``predict``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import partial

import torch
from torch import Tensor, nn

from metazoo.engine.batchnorm import BatchNormMode, bn_mode
from metazoo.engine.functional import buffers_of, forward
from metazoo.engine.inner import InnerLoop, autograd_grads, functorch_grads, run_inner_loop
from metazoo.engine.task import MetaParams, TaskOutput, detached, task_objective
from metazoo.episode import EpisodeBatch, EpisodeList

__all__ = [
    "EXECUTORS",
    "TaskResults",
    "InnerLoopDivergence",
    "resolve_executor",
    "run_tasks",
    "run_groups",
    "backward_in_chunks",
    "raise_if_diverged",
    "adapt",
    "predict",
]

#: Executor names accepted by learners' ``executor`` config field.
EXECUTORS = ("auto", "sequential", "vectorized")

#: ``auto`` uses the vectorized executor from this meta-batch size on (on an accelerator).
MIN_VECTORIZED_BATCH = 4

Weights = dict[str, Tensor]


class InnerLoopDivergence(FloatingPointError):
    """A non-finite loss inside the inner loop; the message names the task and the step."""


@dataclass
class TaskResults:
    """Per-task results of a meta-batch of T tasks.

    Attributes:
        query_losses: ``(T, S)`` query loss after each kept step (``S = steps`` with
            ``every_step``, else 1); attached to the outer graph unless detached.
        metric: ``(T,)`` detached accuracy in % or MSE on the query set after the last step.
        support_losses: ``(T, steps)`` detached support loss before each step.
        fast_weights: name -> ``(T, *shape)`` adapted weights, or None where not kept.
    """

    query_losses: Tensor
    metric: Tensor
    support_losses: Tensor
    fast_weights: Weights | None = None

    @property
    def query_loss(self) -> Tensor:
        """``(T,)`` query loss after the last step."""
        return self.query_losses[:, -1]

    @staticmethod
    def concatenate(parts: list[TaskResults]) -> TaskResults:
        """The results of consecutive chunks as one."""
        weights = None
        if all(p.fast_weights is not None for p in parts):
            weights = {
                n: torch.cat([p.fast_weights[n] for p in parts]) for n in parts[0].fast_weights
            }
        return TaskResults(
            torch.cat([p.query_losses for p in parts]),
            torch.cat([p.metric for p in parts]),
            torch.cat([p.support_losses for p in parts]),
            weights,
        )


def resolve_executor(
    executor: str, device: torch.device, meta_batch: int, bn_policy: str, training: bool
) -> str:
    """The concrete executor ``auto`` stands for here; other names are checked and returned."""
    if executor not in EXECUTORS:
        raise ValueError(f"executor must be one of {EXECUTORS}, got {executor!r}")
    if executor != "auto":
        return executor
    if device.type == "cpu" or meta_batch < MIN_VECTORIZED_BATCH:
        return "sequential"
    if bn_policy == "running" and training:
        return "sequential"
    return "vectorized"


def _without_outer_graph(meta: MetaParams, loop: InnerLoop) -> MetaParams:
    """Detached copies of ``meta``; the adapted weights still accept inner gradients."""
    names = set(loop.adaptable(meta.weights))
    weights = {n: w.detach().requires_grad_(n in names) for n, w in meta.weights.items()}
    return MetaParams(weights, detached(meta.lr), detached(meta.overrides))


def _stack(outputs: list[TaskOutput]) -> TaskResults:
    q, m, s, w = zip(*outputs)
    weights = {n: torch.stack([f[n] for f in w]) for n in w[0]}
    return TaskResults(torch.stack(q), torch.stack(m), torch.stack(s), weights)


def sequential(model, loop, meta, buffers, batch, *, ways, every_step, outer) -> TaskResults:
    """:func:`task_objective` task by task, inner gradients by ``torch.autograd.grad``."""
    grad_fn = partial(autograd_grads, create_graph=outer and not loop.first_order)
    with bn_mode(model, loop.bn_policy, vectorized=False):
        outputs = [
            task_objective(
                model,
                loop,
                meta,
                buffers,
                grad_fn,
                batch.task_tensors(t),
                ways=ways,
                every_step=every_step,
            )  # fmt: skip
            for t in range(len(batch))
        ]
    return _stack(outputs)


def vectorized(model, loop, meta, buffers, batch, *, ways, every_step, outer) -> TaskResults:
    """:func:`task_objective` under ``torch.func.vmap`` over the tasks of ``batch``."""
    grad_fn = partial(functorch_grads, first_order=loop.first_order or not outer)

    def one(*task: Tensor) -> TaskOutput:
        return task_objective(
            model, loop, meta, buffers, grad_fn, task, ways=ways, every_step=every_step
        )

    with BatchNormMode(loop.bn_policy, vectorized=True):
        out = torch.func.vmap(one, randomness="different")(
            batch.support_x, batch.support_y, batch.query_x, batch.query_y
        )
    return TaskResults(*out)


_RUN = {"sequential": sequential, "vectorized": vectorized}


def run_tasks(
    model: nn.Module,
    batch: EpisodeBatch | EpisodeList,
    loop: InnerLoop,
    meta: MetaParams,
    *,
    outer: bool = True,
    every_step: bool = False,
    executor: str = "auto",
    chunk_size: int | None = None,
) -> TaskResults:
    """Adapt each task of ``batch`` on its support set and evaluate its query set.

    Args:
        model: any ``nn.Module`` (not modified; its buffers are copied unless ``bn_policy`` is
            ``running``).
        batch: T tasks; ``support_x (T, N*K, *x)``, ``query_x (T, N*Q, *x)``; or an
            :class:`EpisodeList` of tasks of different sizes, whose same-shaped tasks run
            together (see :func:`run_groups`).
        loop: static inner-loop settings.
        meta: outer weights, learning rates and overrides (tensors may require grad).
        outer: keep the graph back to ``meta`` (meta-training); False adapts detached copies
            (evaluation; cheaper).
        every_step: also the query loss after every inner step (MAML++'s multi-step loss).
        executor: ``auto``, ``sequential`` or ``vectorized`` (see the module docstring).
        chunk_size: tasks per ``vmap`` call in the vectorized executor (None: all at once).

    Returns:
        :class:`TaskResults` for the T tasks, in order, with the fast weights.

    Raises:
        ValueError: a model output that does not fit the task, or a bad executor or chunk size.
    """
    if chunk_size is not None and chunk_size < 1:
        raise ValueError(f"chunk_size must be a positive number of tasks or None, got {chunk_size}")
    if isinstance(batch, EpisodeList):
        settings = {"outer": outer, "every_step": every_step, "executor": executor}
        return run_groups(model, batch, loop, meta, chunk_size=chunk_size, **settings)
    if outer:  # frozen parameters stay out; evaluation adapts detached copies of all chosen
        loop = loop.bound_to(meta.weights)
    else:
        meta = _without_outer_graph(meta, loop)
    name = resolve_executor(
        executor, batch.support_x.device, len(batch), loop.bn_policy, model.training
    )
    if name == "vectorized" and loop.bn_policy == "running" and model.training:
        raise RuntimeError(
            "bn_policy='running' updates BatchNorm running statistics in place, which vmap cannot "
            "do while training; use executor='sequential' or bn_policy='transductive'"
        )
    buffers = buffers_of(model, loop.bn_policy)
    ways = batch.ways if loop.task == "classification" else None
    chunks = batch.split(chunk_size) if name == "vectorized" and chunk_size else [batch]
    facts = {"ways": ways, "every_step": every_step, "outer": outer}
    parts = [_RUN[name](model, loop, meta, buffers, chunk, **facts) for chunk in chunks]
    return parts[0] if len(parts) == 1 else TaskResults.concatenate(parts)


def run_groups(
    model: nn.Module,
    batch: EpisodeList,
    loop: InnerLoop,
    meta: MetaParams,
    **settings,
) -> TaskResults:
    """:func:`run_tasks` on tasks of different sizes: each group of same-shaped tasks runs as one
    meta-batch (vectorized where the executor allows), a task alone falls back to a batch of one.

    Args:
        batch: T tasks of any sizes. Their fast weights must share shapes: a classifier's head
            is padded to the largest ways (``loop.padded_head``) or all tasks have the same ways.
        **settings: ``outer``, ``every_step``, ``executor``, ``chunk_size`` of :func:`run_tasks`.

    Returns:
        :class:`TaskResults` of the T tasks in the order of ``batch``.
    """
    ways = {task.ways for task in batch}
    if len(ways) > 1 and not loop.padded_head and loop.task == "classification":
        raise ValueError(
            f"the tasks have different ways {sorted(ways)} but the head is not padded: create "
            "the learner with padded_head=True and a head of the largest ways (metazoo."
            "build_learner does this for a benchmark with varied episodes)"
        )
    order, parts = [], []
    for indices, group in batch.groups():
        order += indices
        parts.append(run_tasks(model, group, loop, meta, **settings))
    results = parts[0] if len(parts) == 1 else TaskResults.concatenate(parts)
    back = torch.argsort(torch.tensor(order)).to(results.metric.device)
    weights = results.fast_weights
    return TaskResults(
        results.query_losses[back],
        results.metric[back],
        results.support_losses[back],
        None if weights is None else {n: w[back] for n, w in weights.items()},
    )


def backward_in_chunks(
    run: Callable[[EpisodeBatch], TaskResults],
    batch: EpisodeBatch,
    chunk_size: int,
    loss_of: Callable[[TaskResults], Tensor],
) -> TaskResults:
    """``loss_of(run(chunk)).backward()`` chunk by chunk: one chunk's graph alive at a time.

    Args:
        run: a chunk's per-task results (e.g. :func:`run_tasks` with the learner's settings).
        batch: T tasks.
        chunk_size: tasks per chunk (1 for the sequential executor).
        loss_of: the chunk's share of the objective to backpropagate (e.g. ``scale *`` the sum of
            its query losses).

    Returns:
        the detached :class:`TaskResults` of all T tasks, without fast weights.
    """
    parts = []
    for chunk in batch.split(chunk_size) if chunk_size < len(batch) else [batch]:
        results = run(chunk)
        loss_of(results).backward()
        parts.append(
            TaskResults(results.query_losses.detach(), results.metric, results.support_losses)
        )
    return parts[0] if len(parts) == 1 else TaskResults.concatenate(parts)


def raise_if_diverged(results: TaskResults, steps: int) -> None:
    """Raise :class:`InnerLoopDivergence` at the first non-finite support or query loss.

    Reads values back to the host: a captured CUDA graph cannot contain it.
    """
    query, support = results.query_losses.detach(), results.support_losses
    if bool(torch.isfinite(support).all()) and bool(torch.isfinite(query).all()):
        return
    for t in range(query.shape[0]):
        for s in range(support.shape[1]):
            if not torch.isfinite(support[t, s]):
                raise InnerLoopDivergence(
                    f"non-finite support loss ({support[t, s].item()}) at inner step {s} of "
                    f"{steps}, task {t} of the meta-batch: lower inner_lr, or check the "
                    "inputs of that task"
                )
        if not torch.isfinite(query[t]).all():
            raise InnerLoopDivergence(
                f"non-finite query loss after {steps} inner steps, task {t} of the "
                "meta-batch: lower inner_lr or inner_steps, or check the inputs of that task"
            )


def adapt(
    model: nn.Module,
    support_x: Tensor,
    support_y: Tensor,
    loop: InnerLoop,
    meta: MetaParams,
    *,
    outer: bool,
    ways: int | None,
) -> Weights:
    """Adapted weights for one task: :func:`run_inner_loop` alone, no query set.

    Args:
        support_x: ``(N*K, *x)`` support inputs.
        support_y: ``(N*K,)`` labels or ``(N*K, *y)`` targets.
        outer: keep the graph back to ``meta``; False returns detached weights.
        ways: N of a classification task (checked against the model's output); None for
            regression.

    Returns:
        name -> tensor for every parameter.
    """
    if outer:  # frozen parameters stay out; evaluation adapts detached copies of all chosen
        loop = loop.bound_to(meta.weights)
    else:
        meta = _without_outer_graph(meta, loop)
    buffers = buffers_of(model, loop.bn_policy)
    grad_fn = partial(autograd_grads, create_graph=outer and not loop.first_order)
    with bn_mode(model, loop.bn_policy, vectorized=False):
        trajectory, losses = run_inner_loop(
            model, meta.weights, buffers, support_x, support_y, loop, meta.lr, grad_fn,
            meta.overrides, ways=ways,
        )  # fmt: skip
    if losses:
        support = torch.stack(losses)[None]
        raise_if_diverged(
            TaskResults(support_x.new_zeros(1, 1), support[:, -1], support), loop.steps
        )
    fast = trajectory[-1]
    return fast if outer else {n: w.detach() for n, w in fast.items()}


def predict(
    model: nn.Module,
    weights: Weights,
    query_x: Tensor,
    bn_policy: str = "transductive",
    overrides: Mapping[str, Tensor] | None = None,
) -> Tensor:
    """``model(query_x)`` with ``weights`` (from :func:`adapt`) under the BatchNorm policy.

    Args:
        query_x: ``(N*Q, *x)`` query inputs.

    Returns:
        ``(N*Q, N)`` logits or ``(N*Q, *y)`` regression outputs.
    """
    with bn_mode(model, bn_policy, vectorized=False):
        return forward(model, weights, buffers_of(model, bn_policy), query_x, overrides)
