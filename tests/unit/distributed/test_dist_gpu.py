"""Data-parallel meta-training on CUDA: gloo with 2 ranks on the GPUs there are, NCCL when >= 2 GPUs."""

from __future__ import annotations

import pytest
import torch
from dist_helpers import gpu_scenarios, run_ranks, train_scenario

pytestmark = [pytest.mark.gpu, pytest.mark.slow]

NAMES, STEPS, GLOBAL_BATCH = ["maml", "protonet", "reptile"], 4, 16


def _check(ranks: list[dict]) -> None:
    single = {
        n: train_scenario(n, STEPS, GLOBAL_BATCH, init_seed=0, device="cuda:0") for n in NAMES
    }
    for rank in ranks:
        for name in NAMES:
            assert rank[name]["divergence"] == 0.0
            for key, expected in single[name]["state"].items():
                torch.testing.assert_close(
                    rank[name]["state"][key], expected.cpu(), rtol=1e-9, atol=1e-11
                )


def test_gloo_two_ranks_on_cuda_match_one_process(tmp_path):
    _check(run_ranks(gpu_scenarios, 2, tmp_path, NAMES, STEPS, GLOBAL_BATCH, backend="gloo"))


@pytest.mark.skipif(torch.cuda.device_count() < 2, reason="NCCL needs one GPU per rank")
def test_nccl_two_ranks_match_one_process(tmp_path):
    _check(run_ranks(gpu_scenarios, 2, tmp_path, NAMES, STEPS, GLOBAL_BATCH, backend="nccl"))


def test_nccl_single_rank_group_is_the_identity(tmp_path):
    _check(run_ranks(gpu_scenarios, 1, tmp_path, NAMES, STEPS, GLOBAL_BATCH, backend="nccl"))
