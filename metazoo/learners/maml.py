"""The MAML family: MAML, first-order MAML, ANIL, Meta-SGD and MAML++ as one learner.

Finn, Abbeel and Levine. "Model-Agnostic Meta-Learning for Fast Adaptation of Deep Networks."
ICML 2017 (``maml``; ``fomaml`` drops the second-order terms).
Raghu, Raghu, Bengio and Vinyals. "Rapid Learning or Feature Reuse? Towards Understanding the
Effectiveness of MAML." ICLR 2020 (``anil``: only the head adapts).
Li, Zhou, Chen and Li. "Meta-SGD: Learning to Learn Quickly for Few-Shot Learning."
arXiv:1707.09835, 2017 (``metasgd``: a learned rate per parameter element).
Antoniou, Edwards and Storkey. "How to train your MAML." ICLR 2019 (``mamlpp``).

MAML learns an initialisation: for each task of a meta-batch, a few gradient steps on the support
set turn the shared weights into task-specific fast weights; the meta-objective is the query loss
at those fast weights, averaged over tasks, and its gradient flows back through the inner steps.
The variants differ only in settings of one :class:`MAML.Config`: which weights adapt (``adapt``:
all, or the head as in ANIL), how the inner rates are held (``learned_lrs``: a fixed float, a
learned tensor per parameter as in Meta-SGD, or a learned scalar per parameter tensor and step as
in MAML++'s LSLR), MAML++'s multi-step loss annealed over training (MSL), per-step BatchNorm
weights (BNWB) with per-step batch statistics, and first-order warm-up steps (DA). Schedules read
the training step passed in (``meta_loss(batch, step=...)``), never a counter. Any ``nn.Module``
works, BatchNorm included. The computation lives in :mod:`metazoo.engine`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from metazoo import engine
from metazoo._registry import register_learner
from metazoo.episode import EpisodeBatch
from metazoo.learner import EvalSettings
from metazoo.learners.maml_parts import (
    ADAPT_CHOICES,
    LEARNED_LRS,
    batch_norm_parameter_names,
    head_parameter_names,
    initial_rates,
    multi_step_loss_weights,
)

__all__ = ["MAML", "head_parameter_names", "multi_step_loss_weights"]

#: Entry of a padded-head learner's adapted state that holds the task's ways.
WAYS_KEY = "task_ways"

_MAMLPP = {
    "inner_steps": 5,
    "bn_policy": "per_step",
    "learned_lrs": "per_step",
    "multi_step_loss": True,
    "per_step_bn_weights": True,
}


@register_learner("maml", family="optimization")
@register_learner("fomaml", family="optimization", first_order=True)
@register_learner("anil", family="optimization", adapt="head")
@register_learner("metasgd", family="optimization", learned_lrs="per_parameter")
@register_learner("mamlpp", family="optimization", **_MAMLPP)
class MAML(nn.Module):
    """The MAML family around ``model`` (used as given; never copied)."""

    tasks = ("classification", "regression")
    #: adaptation takes gradients: the harness runs ``adapt`` with autograd on.
    adapts_by_gradient = True

    @dataclass
    class Config:
        """MAML-family settings (defaults: MAML with the paper's sinusoid step size)."""

        #: Inner-loop learning rate alpha (the initial value of learned rates).
        inner_lr: float = 0.01
        #: Inner gradient steps during meta-training.
        inner_steps: int = 1
        #: Inner steps at meta-test time (``eval()`` mode); None: as ``inner_steps``.
        test_inner_steps: int | None = None
        #: Drop second-order terms (first-order MAML).
        first_order: bool = False
        #: First-order meta-gradients for this many training steps, then second order (MAML++'s DA).
        first_order_steps: int = 0
        #: ``sgd`` (the papers) or ``adam`` (differentiable Adam in the inner loop).
        inner_optimizer: str = "sgd"
        #: Which weights adapt: ``all`` (MAML) or ``head`` (ANIL).
        adapt: str = "all"
        #: Parameter-name prefix of the head (e.g. ``head`` or ``6``); None: the last nn.Linear.
        head: str | None = None
        #: ``none`` (the float ``inner_lr``), ``per_parameter`` (a learned tensor shaped as each
        #: parameter; Meta-SGD) or ``per_step`` (a learned scalar per tensor and step; LSLR).
        learned_lrs: str = "none"
        #: Draw initial ``per_parameter`` rates from U[lr_init_low, lr_init_high] (Meta-SGD's
        #: [0.005, 0.1]) instead of the constant ``inner_lr``; drawn from the global torch RNG.
        random_init: bool = False
        #: Lower end of the random initial rates.
        lr_init_low: float = 0.005
        #: Upper end of the random initial rates.
        lr_init_high: float = 0.1
        #: Multi-step loss with importances annealed to the final step (MAML++'s MSL).
        multi_step_loss: bool = False
        #: Training steps over which the multi-step loss anneals to the final-step loss.
        msl_anneal_steps: int = 5000
        #: Per-step BatchNorm weights and biases, kept out of the inner loop (MAML++'s BNWB).
        per_step_bn_weights: bool = False
        #: ``transductive`` (batch statistics; MAML's reference), ``per_step`` or ``running``.
        bn_policy: str = "transductive"
        #: ``auto``, ``sequential`` (reference) or ``vectorized`` (vmap over tasks).
        executor: str = "auto"
        #: Tasks per vmap call in the vectorized executor (None: the whole meta-batch).
        chunk_size: int | None = None
        #: ``classification`` (cross-entropy) or ``regression`` (MSE); filled by build_learner.
        task: str = "classification"
        #: The head has the largest ways of varied episodes and a task uses its first N logits
        #: (the rest masked out); filled by build_learner for benchmarks with varied episodes.
        padded_head: bool = False

    def __init__(self, model: nn.Module | None, config: Config):
        super().__init__()
        if model is None:
            raise ValueError(
                f"{type(self).__name__} adapts a network: pass a model (e.g. from "
                "metazoo.models.make_backbone) or use metazoo.build_learner"
            )
        _check_choices(config)
        params = engine.parameters_of(model)  # a model without parameters is an error now
        self.model, self.config = model, config
        steps = max(config.inner_steps, 1)
        per_step_bn = config.per_step_bn_weights and config.inner_steps > 1
        #: BatchNorm parameters with one learned copy per inner step (BNWB), not adapted.
        self.bn_names = tuple(batch_norm_parameter_names(model)) if per_step_bn else ()
        chosen = head_parameter_names(model, config.head) if config.adapt == "head" else params
        #: Parameters the inner loop updates.
        self.adapt_names = tuple(n for n in chosen if n not in self.bn_names)
        #: Parameters with a learned rate, in the order of ``inner_lrs``.
        self.lr_names = tuple(n for n in params if params[n].requires_grad)
        if config.learned_lrs == "per_step":
            self.lr_names = tuple(n for n in self.lr_names if n not in self.bn_names)
        self.inner_lrs = initial_rates(params, self.lr_names, config, steps)
        #: ``step_bn[i][s - 1]``: BatchNorm parameter ``bn_names[i]`` at inner step ``s >= 1``.
        self.step_bn = nn.ParameterList(
            [
                nn.Parameter(params[n].detach().clone().expand(steps - 1, -1).clone())
                for n in self.bn_names
            ]
        )
        self.inner_loop(training=True)  # validates steps, optimizer, task and policy
        self.inner_loop(training=False)

    @property
    def test_steps(self) -> int:
        """Inner steps used in ``eval()`` mode."""
        steps = self.config.test_inner_steps
        return self.config.inner_steps if steps is None else steps

    def inner_loop(self, training: bool, step: int | None = None) -> engine.InnerLoop:
        """The inner loop for meta-training (``training``, at training ``step``) or meta-test.

        ``step`` is the 0-based training step; None means past every warm-up (second order).
        """
        cfg = self.config
        warming_up = training and step is not None and step < cfg.first_order_steps
        return engine.InnerLoop(
            steps=cfg.inner_steps if training else self.test_steps,
            first_order=cfg.first_order or warming_up,
            optimizer=cfg.inner_optimizer,
            task=cfg.task,
            bn_policy=cfg.bn_policy,
            adapt_names=self.adapt_names,
            padded_head=cfg.padded_head,
        )

    def eval_settings(self) -> EvalSettings:
        """The inner steps and BatchNorm policy of ``eval()``-mode adaptation."""
        return EvalSettings(self.test_steps, self.config.bn_policy)

    def step_weights(self, step: int | None) -> Tensor | None:
        """MAML++'s multi-step loss importances at training ``step``, or None for the final-step
        loss only (in eval mode, once annealed, and for ``step=None``)."""
        cfg = self.config
        if not (self.training and cfg.multi_step_loss and cfg.inner_steps > 1) or step is None:
            return None
        progress = step / max(cfg.msl_anneal_steps, 1)
        if progress >= 1.0:
            return None
        return multi_step_loss_weights(cfg.inner_steps, progress)

    def meta_params(self, tensors: Mapping[str, Tensor] | None = None) -> engine.MetaParams:
        """The learner's tensors as the engine takes them: initial weights, inner rates and
        per-step BatchNorm weights.

        Args:
            tensors: the learner's parameters by ``named_parameters()`` name (the compiled step
                passes functional copies); None: the learner's own.
        """
        t = dict(self.named_parameters()) if tensors is None else tensors
        weights = {n: t[f"model.{n}"] for n, _ in self.model.named_parameters()}
        rates = [t[f"inner_lrs.{i}"] for i in range(len(self.inner_lrs))]
        lr: engine.LearningRate = self.config.inner_lr
        if self.config.learned_lrs == "per_parameter":
            lr = dict(zip(self.lr_names, rates))
        elif self.config.learned_lrs == "per_step":
            steps = max(self.config.inner_steps, 1)
            lr = [{n: r[s] for n, r in zip(self.lr_names, rates)} for s in range(steps)]
        overrides = None
        if self.bn_names:
            bn = [t[f"step_bn.{i}"] for i in range(len(self.bn_names))]
            steps = max(self.config.inner_steps, 1)
            overrides = [{}] + [
                {n: b[s - 1] for n, b in zip(self.bn_names, bn)} for s in range(1, steps)
            ]
        return engine.MetaParams(weights, lr, overrides)

    def meta_loss(
        self, batch: EpisodeBatch, step: int | None = None
    ) -> tuple[Tensor, dict[str, float]]:
        """Mean query loss after adaptation over the T tasks of ``batch``; see ``MetaLearner``.

        Args:
            batch: ``support_x (T, N*K, *x)``, ``query_x (T, N*Q, *x)``.
            step: the 0-based training step, which MAML++'s schedules read; None: their end.
        """
        return engine.meta_objective(
            self.model,
            batch,
            self.inner_loop(self.training, step),
            self.meta_params(),
            step_weights=self.step_weights(step),
            executor=self.config.executor,
            chunk_size=self.config.chunk_size,
        )

    def score_episodes(self, batch: EpisodeBatch) -> Tensor:
        """``(T,)`` per-episode scores (accuracy % or MSE): the numbers ``adapt`` then
        ``predict`` give episode by episode, by the learner's executor. The harness uses it."""
        return engine.task_scores(
            self.model,
            batch,
            self.inner_loop(self.training),
            self.meta_params(),
            executor=self.config.executor,
            chunk_size=self.config.chunk_size,
        )

    def adapt(self, support_x: Tensor, support_y: Tensor, ways: int | None) -> dict[str, Tensor]:
        """Fast weights for one task (the last step's BatchNorm weights merged in).

        Args:
            support_x: ``(N*K, *x)``; support_y: ``(N*K,)`` or ``(N*K, *y)``.
            ways: N of a classification task; None for regression.
        """
        loop = self.inner_loop(self.training)
        meta = self.meta_params()
        fast = engine.adapt_task(
            self.model, support_x, support_y, loop, meta, training=self.training, ways=ways
        )
        if meta.overrides:
            last = engine.inner.override_at(meta.overrides, loop.steps - 1)
            if not (self.training and torch.is_grad_enabled()):
                last = {n: w.detach() for n, w in last.items()}
            fast = {**fast, **last}
        if self.config.padded_head and self.config.task == "classification":
            fast[WAYS_KEY] = torch.tensor(ways)  # for predict's logits
        return fast

    def predict(self, state: dict[str, Tensor], query_x: Tensor) -> Tensor:
        """Logits ``(N*Q, N)`` or outputs ``(N*Q, *y)`` for ``query_x (N*Q, *x)``."""
        weights = {n: w for n, w in state.items() if n != WAYS_KEY}
        out = engine.predict(self.model, weights, query_x, self.config.bn_policy)
        if WAYS_KEY in state:
            return engine.visible_logits(out, int(state[WAYS_KEY]), True)
        return out


def _check_choices(config: MAML.Config) -> None:
    if config.adapt not in ADAPT_CHOICES:
        raise ValueError(f"adapt must be one of {ADAPT_CHOICES}, got {config.adapt!r}")
    if config.learned_lrs not in LEARNED_LRS:
        raise ValueError(f"learned_lrs must be one of {LEARNED_LRS}, got {config.learned_lrs!r}")
    if config.executor not in engine.EXECUTORS:
        raise ValueError(f"executor must be one of {engine.EXECUTORS}, got {config.executor!r}")
