"""Machinery for the distributed tests: run a function on W gloo ranks, a tiny sampler and learners.

Ranks are spawned with ``torch.multiprocessing`` and meet through a ``FileStore`` in a temporary
folder; gloo talks over the loopback interface only (``GLOO_SOCKET_IFNAME=lo``), so no socket ever
listens on another address (torchrun's TCPStore would listen on all of them).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import torch.multiprocessing as mp
import torch.nn.functional as F
from torch import Tensor, nn

import metazoo.distributed as dist
from metazoo.episode import Episode, EpisodeBatch

WAYS, SHOTS, QUERIES, FEATURES = 3, 2, 3, 6


def _rank_main(
    rank: int, world: int, folder: str, backend: str, function: Callable, args: tuple
) -> None:
    os.environ["GLOO_SOCKET_IFNAME"] = os.environ["NCCL_SOCKET_IFNAME"] = "lo"
    torch.set_num_threads(1)
    dist.init(
        backend=backend,
        init_method=f"file://{folder}/store",
        env=dist.DistEnv(rank, world, rank),
        timeout_s=60,
    )
    try:
        result = function(*args)
        torch.save(result, Path(folder) / f"rank{rank}.pt")
    finally:
        dist.shutdown()


def run_ranks(
    function: Callable[..., Any], world: int, folder: Path, *args: Any, backend: str = "gloo"
) -> list[Any]:
    """``function(*args)`` on ``world`` ranks; returns each rank's result, by rank."""
    folder.mkdir(parents=True, exist_ok=True)
    spawn_args = (world, str(folder), backend, function, args)
    mp.spawn(_rank_main, args=spawn_args, nprocs=world, join=True)
    return [torch.load(folder / f"rank{r}.pt", weights_only=False) for r in range(world)]


class ClusterSampler:
    """Gaussian-cluster classification episodes, float64; episode ``i`` depends only on ``i``."""

    def __init__(self, seed: int = 0, offset: int = 0):
        self.seed = seed
        self.offset = offset

    def episode(self, index: int) -> Episode:
        g = torch.Generator().manual_seed(1_000_003 * self.seed + index + self.offset)
        centers = 2.0 * torch.randn(WAYS, FEATURES, generator=g, dtype=torch.float64)

        def draw(per_class: int) -> tuple[Tensor, Tensor]:
            labels = torch.arange(WAYS).repeat_interleave(per_class)
            noise = torch.randn(len(labels), FEATURES, generator=g, dtype=torch.float64)
            return centers[labels] + noise, labels

        (sx, sy), (qx, qy) = draw(SHOTS), draw(QUERIES)
        return Episode(sx, sy, qx, qy, WAYS)

    def episodes(self, indices) -> EpisodeBatch:
        return EpisodeBatch.stack([self.episode(i) for i in indices])

    def batch(self, index: int, meta_batch: int) -> EpisodeBatch:
        return self.episodes(range(index * meta_batch, (index + 1) * meta_batch))


class ClusterBenchmark:
    """A benchmark object for ``evaluate`` / ``train``: :class:`ClusterSampler` per split."""

    name = "clusters"
    meta_batch = 4

    def sampler(self, split: str, seed: int, **overrides: Any) -> ClusterSampler:
        return ClusterSampler(seed, offset={"train": 0, "val": 10**6, "test": 2 * 10**6}[split])


class TinyMAML(nn.Module):
    """One second-order inner SGD step on a linear classifier (the test's own MAML)."""

    def __init__(self, inner_lr: float = 0.5):
        super().__init__()
        self.model = nn.Linear(FEATURES, WAYS).double()
        self.config = None
        self.inner_lr = inner_lr

    def adapt(self, support_x: Tensor, support_y: Tensor, ways: int | None) -> dict[str, Tensor]:
        weights = dict(self.model.named_parameters())
        loss = F.cross_entropy(
            torch.func.functional_call(self.model, weights, support_x), support_y
        )
        grads = torch.autograd.grad(loss, list(weights.values()), create_graph=self.training)
        return {k: w - self.inner_lr * g for (k, w), g in zip(weights.items(), grads)}

    def predict(self, state: dict[str, Tensor], query_x: Tensor) -> Tensor:
        return torch.func.functional_call(self.model, state, query_x)

    def meta_loss(
        self, batch: EpisodeBatch, step: int | None = None
    ) -> tuple[Tensor, dict[str, float]]:
        losses, correct = [], 0.0
        for task in batch:
            logits = self.predict(
                self.adapt(task.support_x, task.support_y, task.ways), task.query_x
            )
            losses.append(F.cross_entropy(logits, task.query_y))
            correct += float((logits.argmax(-1) == task.query_y).double().mean())
        return torch.stack(losses).mean(), {"accuracy": 100.0 * correct / len(batch)}


def meta_train(
    learner: nn.Module, sampler, steps: int, meta_batch: int, lr: float = 0.05, device: str = "cpu"
) -> dict:
    """The trainer's loop, written with metazoo.distributed (the same on 1 or W ranks)."""
    dist.broadcast_module(learner)
    optimizer = torch.optim.Adam(learner.parameters(), lr=lr)
    history = []
    for step in range(steps):
        batch = dist.local_batch(sampler, step, meta_batch).to(device)
        if hasattr(learner, "outer_step"):
            metrics = dist.outer_step(learner, batch, optimizer, meta_batch)
        else:
            optimizer.zero_grad()
            loss, metrics = learner.meta_loss(batch)
            loss.backward()
            dist.average_gradients(learner.parameters(), len(batch), meta_batch)
            optimizer.step()
            metrics = dist.average_metrics({"loss": loss.item(), **metrics}, len(batch), meta_batch)
        history.append(metrics)
    state = {k: v.detach().clone() for k, v in learner.state_dict().items()}
    return {"state": state, "history": history, "divergence": dist.max_divergence(learner)}


#: Registered learners of the tests: (registered name, model out_features or "none", config).
REAL_LEARNERS = {
    "maml": ("maml", WAYS, {"inner_lr": 0.3, "inner_steps": 2}),  # second order, 2 steps
    "protonet": ("protonet", None, {}),
    "cnp": ("cnp", "none", {"task": "classification", "input_shape": (FEATURES,),
                            "encoder_sizes": (16, 16), "decoder_sizes": (16,)}),
    "reptile": ("reptile", WAYS, {"inner_lr": 0.1, "inner_steps": 2}),  # interpolates itself
    "reptile-optimizer": ("reptile", WAYS, {"inner_lr": 0.1, "inner_steps": 2,
                                             "outer_update": "optimizer"}),
}  # fmt: skip


def make_learner(name: str) -> nn.Module:
    """A float64 learner: ``tiny-maml`` or one of :data:`REAL_LEARNERS`."""
    if name == "tiny-maml":
        return TinyMAML()
    from metazoo import create_learner
    from metazoo.models import make_backbone

    registered, out, config = REAL_LEARNERS[name]
    model = None
    if out != "none":
        model = make_backbone("mlp", (FEATURES,), out_features=out, hidden_sizes=(16, 16)).double()
    return create_learner(registered, model, **config).double()


def train_scenario(
    name: str, steps: int, meta_batch: int, init_seed: int, device: str = "cpu"
) -> dict:
    """Build learner ``name`` from ``init_seed`` and meta-train it (run on every rank)."""
    torch.manual_seed(init_seed)
    learner = make_learner(name).to(device)
    return meta_train(learner, ClusterSampler(seed=0), steps, meta_batch, device=device)


def train_scenarios(names: list[str], steps: int, meta_batch: int) -> dict[str, dict]:
    """:func:`train_scenario` for each name; each rank starts from different weights (seed = rank)."""
    return {n: train_scenario(n, steps, meta_batch, init_seed=dist.rank()) for n in names}


def trainer_run(name: str, config_kwargs: dict, init_seed: int) -> dict:
    """``metazoo.training.train`` of learner ``name`` on :class:`ClusterBenchmark` (any world size)."""
    from metazoo.training import TrainConfig, train

    torch.manual_seed(init_seed)
    learner = make_learner(name)
    result = train(learner, ClusterBenchmark(), TrainConfig(**config_kwargs))
    state = {k: v.detach().clone() for k, v in learner.state_dict().items()}
    return {
        "state": state,
        "history": result.history,
        "final_step": result.final_step,
        "best_val": result.best_val,
        "divergence": dist.max_divergence(learner),
    }


def trainer_runs(runs: list[tuple[str, dict]]) -> list[dict]:
    """:func:`trainer_run` of each ``(name, config)`` in turn, rank-dependent initial weights."""
    return [trainer_run(name, config, init_seed=dist.rank()) for name, config in runs]


def evaluation_run(name: str, episodes: int) -> dict:
    """``metazoo.evaluate`` of an untrained learner on ``episodes`` test episodes."""
    from metazoo import evaluate

    torch.manual_seed(0)
    result = evaluate(make_learner(name), ClusterBenchmark(), episodes=episodes)
    return {
        "scores": result.scores,
        "mean": result.mean,
        "ci95": result.ci95,
        "ids": result.episode_ids,
    }


def rank_job(plan: dict) -> dict:
    """Everything the distributed tests need from the ranks, in one spawn (start-up dominates).

    ``plan``: ``scenarios`` (names, steps, meta_batch) for :func:`train_scenarios`, ``trainer``
    (a list of ``(name, config)``) for :func:`trainer_runs`, ``evaluation`` (name, episodes).
    """
    return {
        "collectives": collectives(),
        "scenarios": train_scenarios(*plan["scenarios"]),
        "trainer": trainer_runs(plan["trainer"]),
        "evaluation": evaluation_run(*plan["evaluation"]),
    }


def collectives() -> dict:
    """Weighted averages with unequal shares: rank ``r`` holds ``r + 1`` of ``W(W+1)/2`` tasks."""
    r, world = dist.rank(), dist.world_size()
    local, total = r + 1, world * (world + 1) // 2
    norm = nn.BatchNorm1d(2).double()
    norm.running_mean.fill_(float(r + 1))
    dist.average_buffers(norm, local, total)
    linear = nn.Linear(2, 1).double()
    x = torch.full((1, 2), float(r + 1), dtype=torch.float64)
    # Only rank 0's loss uses the bias: rank 1 has bias.grad None, counted as zeros.
    loss = (x @ linear.weight.T).sum() + (linear.bias.sum() if r == 0 else 0.0)
    loss.backward()
    dist.average_gradients(linear.parameters(), local, total)
    mismatched = nn.Linear(2, 1, bias=r == 0)  # rank 1 lacks the bias
    try:
        dist.average_gradients(mismatched.parameters(), local, total)
        mismatch_error = None
    except ValueError as exc:
        mismatch_error = str(exc)
    return {
        "mismatch_error": mismatch_error,
        "metrics": dist.average_metrics({"x": float(r + 1)}, local, total),
        "running_mean": norm.running_mean.clone(),
        "tracked": int(norm.num_batches_tracked),
        "weight_grad": linear.weight.grad.clone(),
        "bias_grad": linear.bias.grad.clone(),
        "scores": dist.gather_scores([float(i) for i in dist.episode_range(5)], 5),
    }


def gpu_scenarios(names: list[str], steps: int, meta_batch: int) -> dict[str, dict]:
    """:func:`train_scenario` on this rank's GPU (``cuda:LOCAL_RANK`` modulo the GPUs there are)."""
    device = f"cuda:{dist.rank() % torch.cuda.device_count()}"
    results = {}
    for name in names:
        result = train_scenario(name, steps, meta_batch, init_seed=dist.rank(), device=device)
        result["state"] = {k: v.cpu() for k, v in result["state"].items()}
        results[name] = result
    return results
