"""The papers' settings per benchmark in the learner cards: what build_learner and the suite runner
take when nothing else is given (issue 15: ANIL at MAML's Omniglot step size, Reptile tested
with 50 inner steps)."""

from __future__ import annotations

import dataclasses

import pytest

from metazoo import build_learner
from metazoo.build import paper_settings, train_defaults
from metazoo.cards import CardError, learner_card, list_learner_cards, validate_learner_card
from metazoo.training import TrainConfig

MAML_FAMILY = ("maml", "fomaml", "anil", "metasgd", "mamlpp", "reptile")
#: the benchmarks the MAML family's papers report (Omniglot 5/20-way, mini-ImageNet 5-way)
PAPER_BENCHMARKS = (
    "omniglot-5w1s",
    "omniglot-5w5s",
    "omniglot-20w1s",
    "omniglot-20w5s",
    "miniimagenet-5w1s",
    "miniimagenet-5w5s",
)


@pytest.mark.parametrize("name", MAML_FAMILY)
@pytest.mark.parametrize("bench", PAPER_BENCHMARKS)
def test_every_maml_family_card_gives_an_inner_loop_and_training_for_every_paper_benchmark(
    name, bench
):
    assert {"inner_lr", "inner_steps"} <= set(paper_settings(name, bench)), (name, bench)
    assert {"steps", "meta_batch"} <= set(train_defaults(name, bench)), (name, bench)


@pytest.mark.parametrize(
    "name,bench,expected",
    [
        # Raghu et al. train ANIL with MAML's hyperparameters, not the sinusoid step size 0.01
        ("anil", "omniglot-5w1s", {"inner_lr": 0.4, "inner_steps": 1, "test_inner_steps": 3}),
        ("anil", "omniglot-20w1s", {"inner_lr": 0.1, "inner_steps": 5, "test_inner_steps": None}),
        ("anil", "miniimagenet-5w1s", {"inner_lr": 0.01, "inner_steps": 5, "test_inner_steps": 10}),
        # Nichol et al.: Adam 0.001 inside, 5 steps in training and 50 at test; epsilon 1 -> 0
        (
            "reptile",
            "omniglot-5w1s",
            {
                "inner_optimizer": "adam",
                "inner_lr": 0.001,
                "inner_steps": 5,
                "test_inner_steps": 50,
                "epsilon": 1.0,
                "epsilon_final": 0.0,
                "anneal_steps": 100000,
            },
        ),
        ("reptile", "omniglot-20w5s", {"inner_lr": 0.0005, "inner_steps": 10}),
        ("reptile", "miniimagenet-5w5s", {"inner_steps": 8, "test_inner_steps": 50}),
        # Li et al. adapt in one step, at training and at test
        ("metasgd", "omniglot-20w1s", {"inner_steps": 1, "test_inner_steps": 1}),
        # Antoniou et al.'s configs: 5 steps, per-step rates from 0.1 (Omniglot) / 0.01
        ("mamlpp", "omniglot-5w1s", {"inner_lr": 0.1, "inner_steps": 5, "test_inner_steps": 5}),
        ("mamlpp", "miniimagenet-5w1s", {"inner_lr": 0.01, "msl_anneal_steps": 7500}),
        ("snail", "omniglot-20w1s", {"max_shots": 1}),
        ("matchingnet", "miniimagenet-5w5s", {"fce": True}),
        ("matchingnet", "omniglot-5w1s", {"fce": False}),
    ],
)
def test_build_learner_gives_the_papers_settings(name, bench, expected):
    config = build_learner(name, bench, backbone_options={"hidden": 8}).config
    got = {key: getattr(config, key) for key in expected}
    assert got == expected


@pytest.mark.parametrize(
    "name,bench,expected",
    [
        ("maml", "omniglot-5w1s", {"steps": 60000, "meta_batch": 32, "lr": 0.001}),
        ("maml", "miniimagenet-5w5s", {"steps": 60000, "meta_batch": 2, "lr": 0.001}),
        ("reptile", "omniglot-20w1s", {"steps": 200000, "meta_batch": 5}),
        ("mamlpp", "omniglot-5w1s", {"meta_batch": 8, "lr_schedule": "cosine"}),
    ],
)
def test_train_defaults_give_the_papers_training(name, bench, expected):
    got = train_defaults(name, bench)
    assert {key: got[key] for key in expected} == expected


def test_train_defaults_are_empty_where_the_card_has_none():
    assert train_defaults("maml", "sinusoid") == {}
    assert train_defaults("protonet", "omniglot-5w1s") == {}


@pytest.mark.parametrize("name", list_learner_cards())
def test_every_card_train_key_is_a_field_of_train_config(name):
    fields = {f.name for f in dataclasses.fields(TrainConfig)}
    for bench, values in (learner_card(name).get("benchmark_train") or {}).items():
        unknown = sorted(set(values) - fields)
        assert not unknown, (
            f"registry/learners/{name}.yaml: benchmark_train.{bench} has {unknown}, "
            "not TrainConfig fields"
        )
        TrainConfig(**values)  # and the values make a valid config


def test_benchmark_train_must_be_a_mapping():
    card = {**learner_card("maml"), "benchmark_train": {"omniglot-5w1s": 32}}
    with pytest.raises(
        CardError,
        match=r"maml.yaml: benchmark_train.omniglot-5w1s must be a mapping of TrainConfig fields",
    ):
        validate_learner_card(card, "maml.yaml")


def test_reptile_card_quotes_the_transductive_row_it_implements():
    """Nichol et al.'s "Reptile + Transduction" row: this learner's BatchNorm uses the query
    batch's statistics (bn_policy transductive); the plain row is named in the note."""
    card = learner_card("reptile")
    assert build_learner("reptile", "omniglot-5w1s").config.bn_policy == "transductive"
    row = card["results"]["omniglot-5w1s"]
    assert (row["value"], row["ci95"]) == (97.68, 0.04)
    assert "Reptile + Transduction" in row["source"]
    assert "plain (non-transductive) Reptile row is 95.39 ± 0.09" in row["note"]
    values = [card["results"][b]["value"] for b in PAPER_BENCHMARKS]
    assert values == [97.68, 99.48, 89.43, 97.12, 49.97, 65.99]
