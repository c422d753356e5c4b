"""channels_last for any learner: NHWC convolution weights, the same training up to float rounding."""

from __future__ import annotations

import pytest
import torch

import metazoo
from metazoo.training import TrainConfig, train

pytestmark = pytest.mark.usefixtures("omniglot_data")


def _trained(channels_last: bool):
    learner = metazoo.build_learner("protonet", "omniglot-5w1s", backbone_options={"hidden": 8})
    # Two SGD steps, not Adam: Adam turns the float noise of near-zero gradients (conv biases
    # before BatchNorm) into whole steps of either sign, and large steps amplify rounding
    config = TrainConfig(
        steps=2, meta_batch=2, val_every=0, log_every=1, optimizer="sgd", lr=1e-3,
        channels_last=channels_last,
    )  # fmt: skip
    result = train(learner, "omniglot-5w1s", config)
    return learner, [h["loss"] for h in result.history if h["kind"] == "train"]


def test_channels_last_trains_the_same_learner_in_nhwc():
    nchw, losses = _trained(False)
    nhwc, losses_nhwc = _trained(True)
    conv = [p for p in nhwc.parameters() if p.dim() == 4]
    assert conv and all(p.is_contiguous(memory_format=torch.channels_last) for p in conv)
    assert losses_nhwc[0] == pytest.approx(losses[0], rel=2e-5)  # float rounding only
    for a, b in zip(nchw.parameters(), nhwc.parameters()):
        torch.testing.assert_close(
            a, b, rtol=1e-3, atol=1e-4
        )  # updates are ~4e-3: a wrong gradient shows
