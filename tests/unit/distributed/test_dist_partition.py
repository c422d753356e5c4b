"""Which tasks and episodes each rank takes, launcher variables, and the single-process identities."""

from __future__ import annotations

import pytest
import torch
from dist_helpers import ClusterSampler, TinyMAML

import metazoo.distributed as dist


@pytest.mark.parametrize("world", [1, 2, 4, 8])
def test_rank_task_slices_tile_the_global_meta_batch(world):
    slices = [dist.task_range(16, r, world) for r in range(world)]
    assert [i for s in slices for i in s] == list(range(16))
    assert slices[-1] == range(16 - 16 // world, 16)


def test_meta_batch_not_divisible_by_ranks_is_a_clear_error():
    with pytest.raises(
        ValueError,
        match=r"meta_batch 10 does not split evenly over 4 ranks: use a multiple of 4 \(e.g. 12\)",
    ):
        dist.task_range(10, 0, 4)


@pytest.mark.parametrize(("episodes", "world"), [(600, 7), (7, 2), (5, 5), (600, 1)])
def test_episode_blocks_cover_every_episode_once_in_order(episodes, world):
    blocks = [dist.episode_range(episodes, r, world) for r in range(world)]
    assert [i for b in blocks for i in b] == list(range(episodes))
    assert max(map(len, blocks)) - min(map(len, blocks)) <= 1


def test_fewer_episodes_than_ranks_is_a_clear_error():
    with pytest.raises(ValueError, match="3 episodes cannot be split over 4 ranks"):
        dist.episode_range(3, 0, 4)


def test_launcher_variables():
    torchrun = {"RANK": "3", "WORLD_SIZE": "4", "LOCAL_RANK": "1"}
    assert dist.env_from(torchrun) == dist.DistEnv(3, 4, 1)
    slurm = {"SLURM_PROCID": "5", "SLURM_NTASKS": "8", "SLURM_LOCALID": "1"}
    assert dist.env_from(slurm) == dist.DistEnv(5, 8, 1)
    assert dist.env_from({}) is None
    assert dist.launched(torchrun) and not dist.launched(slurm)
    with pytest.raises(ValueError, match="rank 4 of world size 4"):
        dist.env_from({"RANK": "4", "WORLD_SIZE": "4"})


def test_init_outside_a_launcher_says_to_use_torchrun(monkeypatch):
    for name in ("RANK", "WORLD_SIZE", "SLURM_PROCID", "SLURM_NTASKS"):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(RuntimeError, match="torchrun --nproc-per-node N -m metazoo train"):
        dist.init()


def test_single_process_is_the_identity():
    batch = ClusterSampler().batch(2, 4)
    assert dist.local_tasks(batch) is batch
    assert torch.equal(dist.local_batch(ClusterSampler(), 2, 4).query_x, batch.query_x)
    learner = TinyMAML()
    loss, _ = learner.meta_loss(batch)
    loss.backward()
    grads = [p.grad.clone() for p in learner.parameters()]
    dist.average_gradients(learner.parameters(), 4, 4)
    assert all(torch.equal(p.grad, g) for p, g in zip(learner.parameters(), grads))
    assert dist.average_metrics({"loss": 1.5}, 4, 4) == {"loss": 1.5}
    assert dist.gather_scores([1.0, 2.0], 2) == [1.0, 2.0]
    assert (dist.rank(), dist.world_size(), dist.is_main()) == (0, 1, True)
    assert dist.on_main(lambda x: x + 1, 1) == 2
    assert [dist.rank_device(d) for d in ("cuda", "cpu", None)] == ["cuda", "cpu", None]
