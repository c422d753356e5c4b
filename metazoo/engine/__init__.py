"""Functional adaptation for the optimization-based learners (MAML family).

Fast weights are ``dict[str, Tensor]`` run through ``torch.func.functional_call``, so any
``nn.Module`` works as given, BatchNorm included. The public free functions:

* :func:`adapt_and_query` ``(model, batch, loop, lr, *, params, overrides, executor, chunk_size,
  return_weights, backward_scale) -> TaskResults``: adapt every task of a meta-batch and compute
  its query loss (attached to the outer graph) and metric;
* :func:`adapt` / :func:`predict`: one task, for ``MetaLearner.adapt`` / ``predict``;
* :func:`meta_objective` / :func:`adapt_task` / :func:`task_scores` (evaluation): the same with
  grad-mode handling and task checks,
  what learners' ``meta_loss`` / ``adapt`` call;
* :class:`InnerLoop`: the static settings (steps, first order, ``sgd``/``adam``, task type,
  BatchNorm policy, which weights adapt); learning rates (:data:`LearningRate`: float,
  per-parameter tensors, or per-step dicts) and per-step overrides are passed separately, so
  meta-learned rates (Meta-SGD, MAML++) receive gradients;
* executors ``sequential`` (reference) and ``vectorized`` (``vmap``, chunked), ``auto`` choosing;
* :class:`BatchNormMode` and :data:`BN_POLICIES` (``transductive``, ``per_step``, ``running``);
* :func:`reproducible` and :func:`precision_mode` (TF32 off, deterministic cuDNN, recorded).
"""

from metazoo.engine.batchnorm import BN_POLICIES, BatchNormMode, batch_norm_plain, check_bn_policy
from metazoo.engine.executors import (
    EXECUTORS,
    InnerLoopDivergence,
    TaskResults,
    adapt,
    adapt_and_query,
    predict,
    resolve_executor,
)
from metazoo.engine.functional import (
    buffers_of,
    forward,
    infer_task,
    metric_name,
    parameters_of,
    task_loss,
    task_metric,
)
from metazoo.engine.inner import INNER_OPTIMIZERS, InnerLoop, LearningRate
from metazoo.engine.objective import (
    adapt_task,
    check_task_of,
    meta_objective,
    summarize,
    task_scores,
)
from metazoo.engine.precision import precision_mode, reproducible

__all__ = [
    "BN_POLICIES",
    "EXECUTORS",
    "INNER_OPTIMIZERS",
    "BatchNormMode",
    "InnerLoop",
    "InnerLoopDivergence",
    "LearningRate",
    "TaskResults",
    "adapt",
    "adapt_and_query",
    "adapt_task",
    "check_task_of",
    "meta_objective",
    "task_scores",
    "summarize",
    "batch_norm_plain",
    "buffers_of",
    "check_bn_policy",
    "forward",
    "infer_task",
    "metric_name",
    "parameters_of",
    "precision_mode",
    "predict",
    "reproducible",
    "resolve_executor",
    "task_loss",
    "task_metric",
]
