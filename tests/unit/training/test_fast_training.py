"""train with TrainConfig.fast (the opt-in fast step): the weights of the plain step, the time
limit, clear refusals."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from metazoo import create_learner
from metazoo.engine.fast import FastOptions
from metazoo.testing import SyntheticBenchmark
from metazoo.training import NonFiniteLossError, TrainConfig, load_checkpoint, train

BENCH = SyntheticBenchmark(features=8, ways=3)


def _maml(name: str = "maml", **config):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(8, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Linear(16, 3))
    return create_learner(name, model, inner_lr=0.3, inner_steps=2, **config)


def _weights(learner) -> torch.Tensor:
    return torch.cat([p.detach().flatten() for p in learner.parameters()])


@pytest.mark.parametrize("name", ["maml", "fomaml", "anil", "metasgd", "mamlpp"])
def test_fast_step_trains_to_the_weights_of_the_plain_step(name):
    config = dict(steps=6, lr=1e-2, val_every=3, val_episodes=8, log_every=1, grad_clip=1.0)
    plain, fast = _maml(name), _maml(name)
    ran = train(plain, BENCH, TrainConfig(**config))
    got = train(fast, BENCH, TrainConfig(**config, fast=FastOptions()))
    assert torch.allclose(_weights(fast), _weights(plain), rtol=1e-5, atol=1e-6)
    losses = [h["loss"] for h in got.history if h["kind"] == "train"]
    expected = [h["loss"] for h in ran.history if h["kind"] == "train"]
    assert losses == pytest.approx(expected, rel=1e-5)
    assert all("accuracy" in h for h in got.history if h["kind"] == "train")
    assert got.best_val == pytest.approx(ran.best_val)


def test_fast_step_metrics_read_back_in_windows_match_the_plain_step():
    """Read every log_every steps, not every step: the same history and per-step events."""
    config = dict(steps=10, lr=1e-2, lr_schedule="cosine", val_every=5, val_episodes=4, log_every=4)
    events = {"plain": [], "fast": []}
    ran = train(_maml(), BENCH, TrainConfig(**config), callback=events["plain"].append)
    got = train(
        _maml(), BENCH, TrainConfig(**config, fast=FastOptions()), callback=events["fast"].append
    )
    steps = {k: [e for e in v if e["kind"] == "step"] for k, v in events.items()}
    assert [e["step"] for e in steps["fast"]] == list(range(1, 11))
    for key in ("loss", "accuracy", "lr"):
        expected = [e[key] for e in steps["plain"]]
        assert [e[key] for e in steps["fast"]] == pytest.approx(expected, rel=1e-5), key
    assert [h["step"] for h in got.history] == [h["step"] for h in ran.history]


def test_fast_step_non_finite_loss_names_the_step_before_any_checkpoint(tmp_path):
    poisoned = SyntheticBenchmark(features=8, ways=3, poisoned=frozenset({9}))  # step 2: 8-11
    config = TrainConfig(
        steps=8,
        meta_batch=4,
        val_every=0,
        log_every=5,
        checkpoint_dir=str(tmp_path),
        checkpoint_every=2,  # read back at step 2 (finite, saved), then at 4: the NaN of step 2
        fast=FastOptions(),
    )
    with pytest.raises(NonFiniteLossError) as info:
        train(_maml(), poisoned, config)
    assert info.value.step == 2 and 9 in info.value.task_indices
    assert load_checkpoint(tmp_path / "last.pt")["step"] == 2  # none written after the NaN
    assert "the meta-loss is nan at step 2" in str(info.value)


def test_time_limit_stops_validates_and_says_so(tmp_path):
    config = TrainConfig(
        steps=10_000,
        max_minutes=0.5 / 60,
        val_every=1000,
        val_episodes=4,
        checkpoint_dir=str(tmp_path),
    )
    result = train(_maml(), BENCH, config)
    assert 0 < result.final_step < 10_000
    assert (
        result.stopped == f"max_minutes={config.max_minutes} reached after step {result.final_step}"
    )
    assert result.history[-1]["kind"] == "val" and result.history[-1]["step"] == result.final_step
    assert (tmp_path / "last.pt").is_file()


@pytest.mark.parametrize(
    "name,config,match",
    [
        ("reptile", {}, "MAML-style meta-gradients; reptile has none"),
        ("maml", {"bn_policy": "running"}, "bn_policy='running'"),
    ],
)
def test_fast_step_refuses_what_it_cannot_run(name, config, match):
    with pytest.raises(ValueError, match=match) as error:
        train(_maml(name, **config), BENCH, TrainConfig(steps=1, val_every=0, fast=FastOptions()))
    assert "train it without TrainConfig.fast (the plain step, the default)" in str(error.value)


@pytest.mark.parametrize("setting", [False, True])
def test_tf32_setting_holds_while_training_and_is_restored(setting):
    before = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
    seen = []
    config = TrainConfig(steps=2, val_every=0, tf32=setting)
    record = lambda event: seen.append(torch.backends.cudnn.allow_tf32)  # noqa: E731
    train(_maml(), BENCH, config, callback=record)
    assert seen and all(flag == setting for flag in seen)
    assert (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32) == before


class _RecordsSamplers(SyntheticBenchmark):
    def sampler(self, split, seed, **overrides):
        self.opened.append((split, overrides.get("device")))
        return super().sampler(split, seed, **overrides)


@pytest.mark.parametrize("on_device", [False, True])
def test_sample_on_device_builds_training_episodes_where_the_learner_is(on_device):
    bench = _RecordsSamplers(features=8, ways=3)
    object.__setattr__(bench, "opened", [])
    config = TrainConfig(steps=1, val_every=1, val_episodes=2, sample_on_device=on_device)
    train(_maml(), bench, config)
    assert ("train", torch.device("cpu") if on_device else None) in bench.opened
    assert ("val", None) in bench.opened  # validation episodes are the harness's
