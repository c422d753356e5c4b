"""train(): learning, best-keeping, schedules, Reptile-style outer steps, resume, NaN handling."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch
from torch import nn

from metazoo.evaluation import evaluate
from metazoo.testing import SyntheticBenchmark, TinyLearner
from metazoo.training import NonFiniteLossError, TrainConfig, load_checkpoint, train
from metazoo.training.checkpoint import RunFolderInUseError, save_atomic

BENCH = SyntheticBenchmark()


def tiny(seed: int = 0, dropout: float = 0.0) -> TinyLearner:
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(8, 8), nn.Dropout(dropout))
    return TinyLearner(model, TinyLearner.Config())


class Killed(Exception):
    """Stands in for the process dying."""


@pytest.mark.learning
def test_training_improves_accuracy_and_keeps_the_best_weights():
    learner = tiny()
    before = evaluate(learner, BENCH, episodes=100).mean
    result = train(learner, BENCH, TrainConfig(steps=150, lr=1e-2, val_every=50, val_episodes=60))
    after = evaluate(learner, BENCH, episodes=100).mean
    assert before < 50 and after > 70, (before, after)
    vals = [h for h in result.history if h["kind"] == "val"]
    assert [h["step"] for h in vals] == [50, 100, 150] and result.final_step == 150
    assert result.best_val == max(h["mean"] for h in vals)
    # the learner now holds the weights that scored best_val on the validation episodes
    assert evaluate(learner, BENCH, episodes=60, split="val").mean == pytest.approx(result.best_val)


def test_history_lr_follows_the_step_schedule():
    config = TrainConfig(
        steps=8, lr=0.1, lr_schedule="step", lr_step_size=4, val_every=0, log_every=1
    )
    result = train(tiny(), BENCH, config)
    lrs = [h["lr"] for h in result.history]
    assert lrs == pytest.approx([0.1, 0.1, 0.1, 0.05, 0.05, 0.05, 0.05, 0.025])


class OuterStepLearner(TinyLearner):
    """Reptile-like: the trainer must call outer_step and nothing else."""

    def __init__(self, model, config):
        super().__init__(model, config)
        self.outer_calls = 0

    def outer_step(self, batch, optimizer, step=None):
        self.outer_calls += 1
        with torch.no_grad():
            for p in self.parameters():
                p.mul_(0.5)
        return {"loss": 1.0}


def test_outer_step_learners_get_their_own_update():
    learner = OuterStepLearner(nn.Linear(8, 8), TinyLearner.Config())
    start = learner.model.weight.detach().clone()
    train(learner, BENCH, TrainConfig(steps=3, val_every=0))
    assert learner.outer_calls == 3
    assert torch.equal(learner.model.weight, start * 0.125)


def _states_equal(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_resume_after_a_kill_reaches_the_same_weights(tmp_path: Path):
    # dropout draws from the global RNG and cosine moves the lr: both must be restored exactly
    common = dict(
        steps=12, lr=1e-2, lr_schedule="cosine", val_every=4, val_episodes=10, log_every=2
    )
    straight = tiny(dropout=0.3)
    full = train(straight, BENCH, TrainConfig(**common, checkpoint_dir=str(tmp_path / "a")))

    def kill_at_7(event):
        if event["kind"] == "step" and event["step"] == 7:
            raise Killed

    broken = tiny(dropout=0.3)
    config = TrainConfig(**common, checkpoint_dir=str(tmp_path / "b"), checkpoint_every=2)
    with pytest.raises(Killed):
        train(broken, BENCH, config, callback=kill_at_7)
    killed_at = load_checkpoint(tmp_path / "b" / "last.pt")
    assert killed_at["step"] == 6
    assert killed_at["sampler_position"] == {
        "split": "train", "seed": 0, "next_batch_index": 6, "meta_batch": 4,
    }  # fmt: skip
    events = []
    resumed = tiny(seed=123, dropout=0.3)  # other initial weights: everything comes from last.pt
    done = train(resumed, BENCH, dataclasses.replace(config, resume=True), callback=events.append)
    assert events[0] == {"kind": "resume", "step": 6, "steps": 12}
    assert done.total_seconds == pytest.approx(killed_at["seconds"] + done.seconds, rel=1e-6)
    assert killed_at["seconds"] > 0 and full.total_seconds == pytest.approx(full.seconds)
    assert _states_equal(straight.state_dict(), resumed.state_dict())
    assert done.best_val == full.best_val and done.best_step == full.best_step
    assert [h["step"] for h in done.history] == [h["step"] for h in full.history]
    a, b = (load_checkpoint(p / "last.pt") for p in (tmp_path / "a", tmp_path / "b"))
    assert a["step"] == b["step"] == 12
    assert _states_equal(a["learner_state"], b["learner_state"])
    assert a["optimizer_state"]["state"][0]["exp_avg"].equal(
        b["optimizer_state"]["state"][0]["exp_avg"]
    )


def test_resume_refuses_a_changed_config(tmp_path: Path):
    config = TrainConfig(steps=2, val_every=0, checkpoint_dir=str(tmp_path))
    train(tiny(), BENCH, config)
    changed = dataclasses.replace(config, lr=0.5, resume=True)
    with pytest.raises(ValueError, match=r"the config changed \(lr: 0.001 -> 0.5\)") as refused:
        train(tiny(), BENCH, changed)
    assert str(refused.value).endswith(  # the words of both ways in: the CLI's and Python's
        "start a new run in another folder (`--out` in `metazoo train`, `checkpoint_dir` in "
        "TrainConfig)"
    )


def test_a_folder_holding_a_run_is_refused_unless_resume_or_overwrite(tmp_path: Path):
    config = TrainConfig(steps=2, val_every=1, val_episodes=2, checkpoint_dir=str(tmp_path))
    train(tiny(), BENCH, config, quiet=True)
    (tmp_path / "result.json").write_text("{}")  # as `metazoo train` leaves it
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    with pytest.raises(RunFolderInUseError) as refused:
        train(tiny(seed=1), BENCH, config, quiet=True)
    assert str(refused.value) == (
        f"checkpoint_dir {tmp_path} already holds a run (last.pt, best.pt, result.json); set "
        "resume=True to continue it, overwrite=True to delete it and start over, or give another "
        "checkpoint_dir folder"
    )
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before  # nothing touched
    with pytest.raises(ValueError, match="^resume=True and overwrite=True contradict each other"):
        train(tiny(), BENCH, dataclasses.replace(config, resume=True, overwrite=True))
    # overwrite: the earlier run's files go, a new run (other weights) takes the folder
    again = dataclasses.replace(config, val_every=0, overwrite=True)
    train(tiny(seed=1), BENCH, again, quiet=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.pt"]
    fresh = load_checkpoint(tmp_path / "last.pt")
    assert fresh["train_config"]["overwrite"] is True and fresh["train_config"]["val_every"] == 0


def test_nan_loss_names_step_task_and_last_checkpoint(tmp_path: Path):
    poisoned = SyntheticBenchmark(
        poisoned=frozenset({9})
    )  # meta-batch 4: step 2 holds episodes 8-11
    config = TrainConfig(steps=5, val_every=0, checkpoint_dir=str(tmp_path), checkpoint_every=1)
    with pytest.raises(NonFiniteLossError) as info:
        train(tiny(), poisoned, config)
    err = info.value
    assert err.step == 2 and err.task_indices == [9]
    assert err.last_checkpoint == str(tmp_path / "last.pt")
    assert load_checkpoint(err.last_checkpoint)["step"] == 2
    assert "the meta-loss is nan at step 2; training episodes [9]" in str(err)
    assert f"Last good checkpoint: {tmp_path / 'last.pt'}" in str(err)


def test_atomic_save_never_leaves_a_partial_file(tmp_path: Path):
    target = tmp_path / "last.pt"
    save_atomic({"format": 1, "x": torch.ones(2)}, target)
    with pytest.raises(Exception):  # noqa: B017 - pickling a lambda fails mid-write
        save_atomic({"format": 1, "x": lambda: None}, target)
    assert torch.equal(torch.load(target)["x"], torch.ones(2))
    assert [p.name for p in tmp_path.iterdir()] == ["last.pt"]


def test_config_errors_say_what_to_do():
    with pytest.raises(ValueError, match="resume=True needs checkpoint_dir"):
        TrainConfig(resume=True)
    with pytest.raises(ValueError, match=r"overwrite=True needs checkpoint_dir \(the folder"):
        TrainConfig(overwrite=True)
    with pytest.raises(ValueError, match=r"optimizer must be one of \('adam', 'adamw', 'sgd'\)"):
        TrainConfig(optimizer="lbfgs")


class WaysRecorder(TinyLearner):
    """Records the ways of training batches and of the episodes it adapts to at validation."""

    def __init__(self, model, config):
        super().__init__(model, config)
        self.train_ways, self.eval_ways = set(), set()

    def meta_loss(self, batch, step=None):
        self.train_ways.add(batch.ways)
        return super().meta_loss(batch, step)

    def adapt(self, support_x, support_y, ways):
        if not self.training:
            self.eval_ways.add(ways)
        return super().adapt(support_x, support_y, ways)


def test_train_only_overrides_leave_validation_on_the_test_shape(tmp_path):
    learner = WaysRecorder(nn.Linear(8, 8), TinyLearner.Config())
    config = TrainConfig(steps=2, val_every=1, val_episodes=2, checkpoint_dir=str(tmp_path))
    train(learner, BENCH, config, train_overrides={"ways": 6, "queries": 1})
    assert learner.train_ways == {6} and learner.eval_ways == {3}
    assert load_checkpoint(tmp_path / "last.pt")["train_sampler_overrides"] == {
        "ways": 6,
        "queries": 1,
    }
