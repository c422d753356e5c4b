"""A run's settings are resolved once: ``metazoo train``, Python and a one-cell suite get the same
values for every learner on every benchmark it supports, a card's ``benchmark_train`` included."""

from __future__ import annotations

import dataclasses

import pytest

from metazoo import list_learners
from metazoo.bench.runner import resolve_cell
from metazoo.bench.suite import parse_suite
from metazoo.build import learner_tasks
from metazoo.cards import benchmark_card, list_benchmark_cards
from metazoo.cli.main import build_parser
from metazoo.cli.train import resolve
from metazoo.runs import resolve_run

PAIRS = [
    (learner, benchmark)
    for learner in list_learners()
    for benchmark in list_benchmark_cards()
    if benchmark_card(benchmark)["task"] in learner_tasks(learner)
]


def _values(run) -> dict:
    """What a run uses: the sections passed on, the TrainConfig, and every shown value."""
    passed = {
        name: run.section(name) for name in ("config", "sampler", "train_sampler", "build", "eval")
    }
    shown = {section: {k: v for k, (v, _) in keys.items()} for section, keys in run.shown.items()}
    return {"passed": passed, "train": dataclasses.asdict(run.train_config()), "shown": shown}


def test_every_pair_resolves_the_same_from_the_cli_python_and_a_suite():
    assert len(PAIRS) > 100
    parser = build_parser()
    for learner, benchmark in PAIRS:
        cli = resolve(parser.parse_args(["train", learner, benchmark]))
        python = resolve_run(learner, benchmark)
        suite = parse_suite({"learners": [learner], "benchmarks": [benchmark]})
        (cell,) = suite.cells()
        assert _values(cli) == _values(python) == _values(resolve_cell(cell)), (learner, benchmark)


def test_the_card_training_block_reaches_metazoo_train_and_python():
    cli = resolve(build_parser().parse_args(["train", "reptile", "omniglot-5w1s"]))
    config = cli.train_config()
    assert (config.meta_batch, config.steps) == (5, 100000)  # the card's, not 32 and 1000
    assert (
        cli.sources()["train"]["meta_batch"]
        == "learner card reptile (benchmark_train.omniglot-5w1s)"
    )
    mamlpp = resolve_run("mamlpp", "omniglot-5w1s").train_config()
    assert (mamlpp.lr_schedule, mamlpp.meta_batch) == ("cosine", 8)


def test_precedence_command_line_over_file_over_preset_over_card(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text("train: {meta_batch: 7, steps: 20}\nconfig: {inner_lr: 0.2}\n")
    preset = {"train": {"meta_batch": 9, "steps": 30, "lr": 0.5}, "config": {"inner_steps": 2}}
    run = resolve_run("maml", "omniglot-5w1s", preset=preset, preset_source="suite s",
                      config_file=str(path), overrides=["steps=40"])  # fmt: skip
    config = run.train_config()
    assert (config.steps, config.meta_batch, config.lr) == (40, 7, 0.5)
    sources = run.sources()
    assert sources["train"]["steps"] == "command line"
    assert sources["train"]["meta_batch"] == f"config file {path}"
    assert sources["train"]["lr"] == "suite s"
    assert sources["train"]["val_every"] == "default"
    assert run.section("config") == {"inner_lr": 0.2, "inner_steps": 2}
    assert (
        sources["config"]["test_inner_steps"]
        == "learner card maml (benchmark_config.omniglot-5w1s)"
    )
    assert sources["sampler"]["ways"] == "benchmark card omniglot-5w1s"
    assert run.build_learner().config.inner_lr == 0.2


def test_print_config_names_every_value_and_its_source(capsys):
    from metazoo.cli.main import main

    assert main(["train", "maml", "omniglot-5w1s", "inner_lr=0.4", "--print-config"]) == 0
    out = capsys.readouterr().out
    for line in ("  inner_lr            = 0.4            (command line)",
                 "  steps            = 60000          (learner card maml (benchmark_train.omniglot-5w1s))",
                 "  val_every        = 500            (default)",
                 "  fast             = None           (default)",
                 "  episodes = 600            (benchmark card omniglot-5w1s)"):  # fmt: skip
        assert line in out.splitlines(), line


@pytest.mark.parametrize(
    "pair,message",
    [("step=30", "unknown key 'step' (did you mean 'steps'?); "),
     ("inner_lrr=0.1", "unknown key 'inner_lrr' (did you mean 'inner_lr'?); ")],
)  # fmt: skip
def test_a_misspelt_key_gets_a_suggestion(pair, message):
    with pytest.raises(TypeError) as info:
        resolve_run("maml", "sinusoid", overrides=[pair])
    assert str(info.value).startswith(message)
