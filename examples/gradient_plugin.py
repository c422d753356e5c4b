"""A gradient-based plugin on the engine's inner loop and training step: BOIL.

Oh, Yoo, Kim and Yun. "BOIL: Towards Representation Change for Few-shot Learning." ICLR 2021.
BOIL is MAML with the roles of ANIL swapped: the inner loop adapts the body (every layer but the
head) and the head stays at its meta-learned initialisation during adaptation.

The learner implements :class:`metazoo.MetaLearner` and declares the optional capabilities
beside it by having their members (nothing to subclass or register with them):

* :class:`metazoo.GradientLearner` (``inner_loop``, ``meta_params``, ``step_weights``, a config
  with ``executor`` and ``chunk_size``): the trainer then steps it with the engine's plain step
  (``metazoo.engine.plain``; ``TrainConfig(fast=FastOptions(...))`` for the engine's compiled
  and CUDA-graphed ``FastMetaStep``), exactly as it steps ``maml``;
* :class:`metazoo.EvalSettingsLearner` (``eval_settings``): the test-time inner steps
  and BatchNorm policy recorded with every result.

Run it (a contract check, then a short training run on a data-free benchmark)::

    python examples/gradient_plugin.py

In a package of its own, register it through the ``metazoo.learners`` entry point as
``examples/plugin/`` does (``docs/writing-a-plugin.md``).
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor, nn

from metazoo import EpisodeBatch, EvalSettings, engine


class BOIL(nn.Module):
    """MAML that adapts the body and keeps the head (the last ``nn.Linear``) fixed per task."""

    family = "optimization"
    model_kind = "classifier"  # build_learner hands it a backbone with an N-way head
    tasks = ("classification", "regression")
    adapts_by_gradient = True  # the harness runs adapt with autograd on

    @dataclass
    class Config:
        """BOIL's settings."""

        #: Inner-loop learning rate.
        inner_lr: float = 0.5
        #: Inner gradient steps during meta-training.
        inner_steps: int = 1
        #: Inner steps at meta-test time (``eval()`` mode); None: as ``inner_steps``.
        test_inner_steps: int | None = None
        #: ``auto``, ``sequential`` or ``vectorized``: how the engine runs a meta-batch's tasks.
        executor: str = "auto"
        #: Tasks per vectorized chunk (None: the engine chooses).
        chunk_size: int | None = None
        #: ``classification`` or ``regression``; filled by build_learner.
        task: str = "classification"

    def __init__(self, model: nn.Module, config: Config):
        super().__init__()
        if model is None:
            raise ValueError("boil adapts a network: pass a model (metazoo.build_learner does)")
        self.model, self.config = model, config
        linears = [name for name, m in model.named_modules() if isinstance(m, nn.Linear)]
        if not linears:
            raise ValueError("boil needs an nn.Linear head to keep fixed in the inner loop")
        head = linears[-1] + "."
        #: The body: every parameter the inner loop adapts.
        self.adapt_names = tuple(n for n, _ in model.named_parameters() if not n.startswith(head))

    # -- GradientLearner: what the engine's training step calls back into --------------------

    def inner_loop(self, training: bool, step: int | None = None) -> engine.InnerLoop:
        """The inner loop for meta-training (``training``) or meta-test; BOIL has no schedule,
        so ``step`` is not read."""
        cfg = self.config
        test = cfg.inner_steps if cfg.test_inner_steps is None else cfg.test_inner_steps
        return engine.InnerLoop(
            steps=cfg.inner_steps if training else test,
            task=cfg.task,
            adapt_names=self.adapt_names,
        )

    def meta_params(self, tensors: dict[str, Tensor] | None = None) -> engine.MetaParams:
        """The initial weights (the learner's own, or ``tensors`` by ``named_parameters()``
        name, which the compiled step passes) and the fixed inner learning rate."""
        t = dict(self.named_parameters()) if tensors is None else tensors
        weights = {n: t[f"model.{n}"] for n, _ in self.model.named_parameters()}
        return engine.MetaParams(weights, self.config.inner_lr)

    def step_weights(self, step: int | None) -> Tensor | None:
        """No multi-step loss: the query loss after the last inner step alone."""
        return None

    # -- MetaLearner ----------------------------------------------------------------------------

    def meta_loss(
        self, batch: EpisodeBatch, step: int | None = None
    ) -> tuple[Tensor, dict[str, float]]:
        """Mean query loss after adapting the body on each task's support set."""
        return engine.meta_objective(
            self.model,
            batch,
            self.inner_loop(self.training, step),
            self.meta_params(),
            executor=self.config.executor,
            chunk_size=self.config.chunk_size,
        )

    def adapt(self, support_x: Tensor, support_y: Tensor, ways: int | None) -> dict[str, Tensor]:
        """Fast weights for one task (no graph back to the learner in ``eval()`` mode)."""
        return engine.adapt_task(
            self.model, support_x, support_y, self.inner_loop(self.training), self.meta_params(),
            training=self.training, ways=ways,
        )  # fmt: skip

    def predict(self, state: dict[str, Tensor], query_x: Tensor) -> Tensor:
        """Logits ``(N*Q, N)`` or outputs ``(N*Q, *y)`` for ``query_x (N*Q, *x)``."""
        return engine.predict(self.model, state, query_x)

    # -- EvalSettingsLearner --------------------------------------------------------------------

    def eval_settings(self) -> EvalSettings:
        """The test-time inner steps and BatchNorm policy (recorded with every result)."""
        loop = self.inner_loop(False)
        return EvalSettings(loop.steps, loop.bn_policy)


def main() -> None:
    """Check the contract, then meta-train a few steps with the engine's training step."""
    import torch

    from metazoo import GradientLearner, TrainConfig, evaluate, train
    from metazoo.testing import SyntheticBenchmark, check_learner, registered

    with registered(BOIL) as name:
        check_learner(name)
        print(f"{name}: the contract suite passes")
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 3))
    learner = BOIL(model, BOIL.Config(inner_lr=0.3))
    print(f"a GradientLearner (stepped by the engine): {isinstance(learner, GradientLearner)}")
    bench = SyntheticBenchmark(features=8, ways=3)
    before = evaluate(learner, bench, episodes=200)
    train(learner, bench, TrainConfig(steps=100, lr=1e-2, val_every=0), quiet=True)
    after = evaluate(learner, bench, episodes=200)
    print(f"test accuracy before training {before.mean:.1f}%, after 100 steps {after.mean:.1f}%")


if __name__ == "__main__":
    main()
