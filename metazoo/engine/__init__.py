"""Functional adaptation for the optimization-based learners (MAML family).

Fast weights are ``dict[str, Tensor]`` run through ``torch.func.functional_call``, so any
``nn.Module`` works as given, BatchNorm included. One function,
:func:`~metazoo.engine.task.task_objective`, defines a task's inner loop and query loss; every
way of running a meta-batch calls it:

* :func:`run_tasks` ``(model, batch, loop, meta, *, outer, every_step, executor, chunk_size)
  -> TaskResults``: per-task query losses, metrics, support losses and fast weights, by the
  ``sequential`` (reference) or ``vectorized`` (``vmap``, chunked) executor, ``auto`` choosing;
* :func:`backward_in_chunks`: the backward taken chunk by chunk, so memory holds one chunk's graph;
* :func:`meta_objective` / :func:`accumulate_meta_gradient` / :func:`task_scores` /
  :func:`adapt_task`: what learners' ``meta_loss``, training step, ``score_episodes`` and
  ``adapt`` call (task checks, grad mode, reductions);
* :class:`~metazoo.engine.fast.FastMetaStep` (``metazoo.engine.fast``): the training step of any
  MAML-family learner: eager, compiled (``torch.compile`` of the vectorized executor's
  meta-gradient) or replayed from a CUDA graph, chosen by :class:`~metazoo.engine.fast.FastOptions`;
* :class:`InnerLoop`: the static settings (steps, first order, ``sgd``/``adam``, task type,
  BatchNorm policy, which weights adapt); :class:`MetaParams`: the tensors the outer loop learns
  (weights, learning rates: :data:`LearningRate`, per-step overrides);
* :func:`adapt_weights` / :class:`FastModel`: the same inner loop on any loss a user computes,
  for their own training loop (learn2learn's ``clone``/``adapt``, higher's ``innerloop_ctx``);
* :class:`BatchNormMode` and :data:`BN_POLICIES` (``transductive``, ``per_step``, ``running``);
* :func:`reproducible` and :func:`precision_mode` (TF32 off, deterministic cuDNN, recorded).

Public for people writing their own loops: the names in ``__all__``. The other names imported
here (checks, reductions the learners share) and the submodules (the fast step, compile, CUDA
graphs, lowerings, executor measurement) are internal to metazoo and may change.
"""

from metazoo.engine.adapt_api import FastModel, adapt_weights
from metazoo.engine.batchnorm import BN_POLICIES, BatchNormMode, batch_norm_plain, check_bn_policy
from metazoo.engine.executors import (
    EXECUTORS,
    InnerLoopDivergence,
    TaskResults,
    adapt,
    backward_in_chunks,
    predict,
    raise_if_diverged,
    resolve_executor,
    run_tasks,
)
from metazoo.engine.functional import (
    buffers_of,
    forward,
    infer_task,
    metric_name,
    parameters_of,
    task_loss,
    task_metric,
    visible_logits,
)
from metazoo.engine.inner import INNER_OPTIMIZERS, InnerLoop, LearningRate
from metazoo.engine.objective import (
    accumulate_meta_gradient,
    adapt_task,
    check_task_of,
    meta_objective,
    objective_of,
    summarize,
    task_scores,
)
from metazoo.engine.precision import precision_mode, reproducible
from metazoo.engine.task import MetaParams, TaskOutput, task_objective

__all__ = [
    "BN_POLICIES",
    "EXECUTORS",
    "BatchNormMode",
    "FastModel",
    "InnerLoop",
    "InnerLoopDivergence",
    "LearningRate",
    "MetaParams",
    "TaskOutput",
    "TaskResults",
    "accumulate_meta_gradient",
    "adapt",
    "adapt_task",
    "adapt_weights",
    "backward_in_chunks",
    "buffers_of",
    "meta_objective",
    "parameters_of",
    "precision_mode",
    "predict",
    "reproducible",
    "run_tasks",
    "task_objective",
]
