"""The GPU-resident path gives the same episodes as the CPU path (deselected without CUDA)."""

from __future__ import annotations

import pytest
import torch
from data_fixtures import grid_dataset

from metazoo.data import EpisodeSampler, SamplerConfig, make_sampler

pytestmark = pytest.mark.gpu


@pytest.mark.parametrize(
    "options",
    [
        {},
        {"rotations": True},
        {"hierarchy": "within", "augment": "flip-shift"},
        {"meta_batch_diversity": True, "mode": "train-train"},
    ],
)
def test_cuda_batches_equal_cpu_batches(options):
    dataset = grid_dataset()
    cpu = EpisodeSampler(dataset, SamplerConfig(3, 2, 3, **options), "grid", "train", 0)
    cuda = EpisodeSampler(
        dataset, SamplerConfig(3, 2, 3, device="cuda", **options), "grid", "train", 0
    )
    a, b = cpu.batch(2, 8), cuda.batch(2, 8)
    assert b.support_x.is_cuda and b.query_y.is_cuda and b.classes.is_cuda
    for name in ("support_x", "support_y", "query_x", "query_y", "classes"):
        assert torch.equal(getattr(a, name), getattr(b, name).cpu()), name


def test_sinusoid_on_cuda():
    a = make_sampler("sinusoid").batch(0, 4)
    b = make_sampler("sinusoid", device="cuda").batch(0, 4)
    assert b.support_x.is_cuda and torch.equal(a.query_y, b.query_y.cpu())
