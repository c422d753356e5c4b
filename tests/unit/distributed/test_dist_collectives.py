"""The collectives behind the trainer, with unequal task shares over 2 gloo ranks."""

from __future__ import annotations

import pytest
import torch

pytestmark = pytest.mark.slow


def test_weighted_averages_over_ranks(two_ranks):
    # rank 0 holds 1 task, rank 1 holds 2: weights 1/3 and 2/3.
    for rank in two_ranks["ranks"]:
        got = rank["collectives"]
        assert got["metrics"]["x"] == pytest.approx((1 * 1 + 2 * 2) / 3, rel=1e-15)
        expected_mean = torch.full((2,), 5 / 3, dtype=torch.float64)
        torch.testing.assert_close(got["running_mean"], expected_mean, rtol=1e-15, atol=0)
        assert got["tracked"] == 0  # integer buffers are left alone
        # d/dw sum(w.x) = x = r + 1 on rank r, averaged with the task weights.
        torch.testing.assert_close(got["weight_grad"], expected_mean[None], rtol=1e-15, atol=0)
        torch.testing.assert_close(got["bias_grad"], torch.tensor([1 / 3], dtype=torch.float64))
        assert got["scores"] == [0.0, 1.0, 2.0, 3.0, 4.0]


def test_ranks_with_different_parameters_fail_together(two_ranks):
    for rank in two_ranks["ranks"]:
        assert rank["collectives"]["mismatch_error"] == (
            "the ranks' learners have 1 to 2 trainable parameters: build the learner the same way "
            "on every rank (same name, config and backbone) before training"
        )
