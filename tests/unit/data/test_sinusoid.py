"""Sinusoid regression: MAML's task distribution, deterministic tasks."""

from __future__ import annotations

import math

import torch

from metazoo.data import SinusoidConfig, SinusoidSampler, make_sampler


def test_card_shapes_train_and_test():
    train = make_sampler("sinusoid").batch(0, 25)
    assert train.support_x.shape == (25, 10, 1) and train.query_y.shape == (25, 10, 1)
    assert train.is_regression and train.support_x.dtype == torch.float32
    test = make_sampler("sinusoid", split="test").episode(0)
    assert test.support_x.shape == (5, 1) and test.query_x.shape == (100, 1)


def test_targets_are_amplitude_sine_of_shifted_inputs():
    sampler = make_sampler("sinusoid")
    for index in range(20):
        amplitude, phase = sampler.task_params(index)
        assert 0.1 <= amplitude <= 5.0 and 0.0 <= phase <= math.pi
        episode = sampler.episode(index)
        for x, y in ((episode.support_x, episode.support_y), (episode.query_x, episode.query_y)):
            assert ((x >= -5) & (x <= 5)).all()
            expected = amplitude * torch.sin(x.double() - phase)
            torch.testing.assert_close(y.double(), expected, atol=1e-5, rtol=0)


def test_parameter_ranges_are_uniform():
    sampler = make_sampler("sinusoid", seed=4)
    params = torch.tensor([sampler.task_params(i) for i in range(4000)])
    assert abs(params[:, 0].mean().item() - 2.55) < 0.1  # mean of U[0.1, 5]
    assert abs(params[:, 1].mean().item() - math.pi / 2) < 0.06
    x = make_sampler("sinusoid").batch(0, 400).support_x
    assert abs(x.mean().item()) < 0.15 and abs(x.var().item() - 100 / 12) < 0.4


def test_deterministic_fixed_tasks_and_seeds():
    a, b = make_sampler("sinusoid", split="test"), make_sampler("sinusoid", split="test")
    assert torch.equal(a.batch(3, 10).query_y, b.batch(3, 10).query_y)
    assert torch.equal(a.batch(3, 10).support_x[4], a.episode(34).support_x)
    assert not torch.equal(
        a.episode(0).support_x, make_sampler("sinusoid", split="test", seed=1).episode(0).support_x
    )
    fixed = SinusoidSampler(SinusoidConfig(fixed_tasks=3))
    assert fixed.task_params(1) == fixed.task_params(4) != fixed.task_params(2)
    assert not torch.equal(fixed.episode(1).support_x, fixed.episode(4).support_x)


def test_train_train_mode():
    episode = make_sampler("sinusoid", mode="train-train").episode(0)
    assert torch.equal(episode.query_x, episode.support_x) and episode.query_x.shape == (10, 1)
