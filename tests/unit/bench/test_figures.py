"""Learning-curve figures from result files the test writes: validation against step and wall time,
seed means and bands, one colour per learner in every figure."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from metazoo.bench.plot import curves_figure, learner_colours, learning_curves, plot_results
from metazoo.bench.results import load_results

matplotlib = pytest.importorskip("matplotlib")  # the plotting extra: without it this module skips


def history(seed: int, timed: bool = True) -> list[dict]:
    """Training entries at steps 5 and 10, validations at 5 and 10; numbers depend on the seed."""
    entries = [
        {"kind": "train", "step": 5, "loss": 2.0 + seed},
        {"kind": "train", "step": 10, "loss": 1.0 + seed},
    ]
    for step, mean, seconds in ((5, 40.0 + 10 * seed, 3.0 + seed), (10, 60.0 + 10 * seed, 7.0)):
        entry = {"kind": "val", "step": step, "metric": "accuracy", "mean": mean, "ci95": 1.0}
        if timed:
            entry["seconds"] = seconds
        entries.append(entry)
    return entries


def write_record(folder: Path, learner: str, benchmark: str, seed: int, timed: bool = True):
    record = {
        "schema": 1, "status": "ok", "learner": learner, "benchmark": benchmark, "seed": seed,
        "variant": None, "finished": f"2025-01-01T00:00:0{seed}",
        "result": {"metric": "accuracy", "mean": 50.0, "ci95": 1.0,
                   "protocol": {"ways": 5, "shots": 1}},
        "train": {"history": history(seed, timed)},
    }  # fmt: skip
    path = folder / f"{learner}__{benchmark}__seed{seed}.json"
    path.write_text(json.dumps(record))


@pytest.fixture
def results(tmp_path) -> Path:
    """MAML with two seeds and ProtoNet with one on Omniglot; ProtoNet alone, untimed, on CUB."""
    for seed in (0, 1):
        write_record(tmp_path, "maml", "omniglot-5w1s", seed)
    write_record(tmp_path, "protonet", "omniglot-5w1s", 0)
    write_record(tmp_path, "protonet", "cub-5w1s", 0, timed=False)  # written before `seconds`
    return tmp_path


def test_curves_are_seed_means_with_spread_and_wall_time(results):
    curves = learning_curves(load_results(results))
    maml = curves["omniglot-5w1s"]["maml"]
    assert (maml.train_steps, maml.train_loss) == ([5, 10], [2.5, 1.5])
    assert maml.train_std == pytest.approx([0.5**0.5] * 2)  # sample std of {2, 3} and {1, 2}
    assert (maml.val_steps, maml.val_mean) == ([5, 10], [45.0, 65.0])
    assert maml.val_std == pytest.approx([50**0.5] * 2)  # sample std of {40, 50}
    assert maml.val_seconds == {5: 3.5, 10: 7.0} and maml.metric == "accuracy"
    assert curves["omniglot-5w1s"]["protonet"].val_std == [0.0, 0.0]
    assert curves["cub-5w1s"]["protonet"].val_seconds == {}


def test_validation_is_drawn_against_step_and_wall_time_in_each_learners_colour(results):
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    records = load_results(results)
    colours = learner_colours(records)
    assert colours == {"maml": "C0", "protonet": "C1"}
    curves = learning_curves(records)
    fig = curves_figure(plt, "omniglot-5w1s", curves["omniglot-5w1s"], colours)
    loss, by_step, by_time = fig.axes
    assert (by_step.get_xlabel(), by_time.get_xlabel()) == ("step", "wall time (s)")
    assert by_time.get_ylabel() == "accuracy (%)"
    lines = {line.get_label(): line for line in by_time.get_lines()}
    assert list(lines["MAML"].get_xdata()) == [3.5, 7.0]  # mean seconds of the two seeds
    assert list(lines["MAML"].get_ydata()) == [45.0, 65.0]
    assert list(lines["ProtoNet"].get_xdata()) == [3.0, 7.0]
    for ax in (loss, by_step, by_time):
        assert {line.get_label(): line.get_color() for line in ax.get_lines()} == {
            "MAML": "C0",
            "ProtoNet": "C1",
        }
        assert len(ax.collections) == 1  # a band for MAML (two seeds), none for one seed
    band = by_time.collections[0].get_paths()[0].vertices
    assert band[:, 1].min() == pytest.approx(45.0 - 50**0.5)
    plt.close(fig)
    # another figure: ProtoNet keeps its colour; without recorded seconds, no time panel
    fig = curves_figure(plt, "cub-5w1s", curves["cub-5w1s"], colours)
    assert len(fig.axes) == 2
    assert [line.get_color() for line in fig.axes[1].get_lines()] == ["C1"]
    plt.close(fig)


def test_plot_results_writes_one_curves_figure_per_benchmark(results, tmp_path):
    paths = plot_results(results, tmp_path / "fig", formats=("png",))
    assert sorted(p.name for p in paths) == ["curves-cub-5w1s.png", "curves-omniglot-5w1s.png"]
    assert all(p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for p in paths)
