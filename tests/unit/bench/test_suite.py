"""Suite files: parsing, settings precedence, error messages, shards."""

from __future__ import annotations

import pytest

from metazoo.bench import load_suite, parse_shard, parse_suite
from metazoo.bench.suite import suite_dir
from metazoo.cards import yaml_files

SUITE = {
    "name": "s",
    "seeds": [0, 1],
    "train": {"steps": 10, "lr": 0.01},
    "eval": {"episodes": 20},
    "runs": [
        {"benchmark": "sinusoid", "learners": ["maml", "cnp"], "train": {"steps": 30}},
        {"benchmark": "omniglot-5w1s", "learners": ["maml", "protonet"]},
    ],
    "overrides": {
        "maml": {"config": {"inner_lr": 0.01}, "train": {"lr": 0.002}},
        "maml@omniglot-5w1s": {"config": {"inner_lr": 0.4}},
    },
}


def test_cells_cross_runs_and_seeds_in_order_with_specific_settings_winning():
    cells = parse_suite(SUITE).cells()
    assert [c.key for c in cells] == [
        "maml__sinusoid__seed0", "maml__sinusoid__seed1", "cnp__sinusoid__seed0",
        "cnp__sinusoid__seed1", "maml__omniglot-5w1s__seed0", "maml__omniglot-5w1s__seed1",
        "protonet__omniglot-5w1s__seed0", "protonet__omniglot-5w1s__seed1",
    ]  # fmt: skip
    by_key = {c.key: c for c in cells}
    assert by_key["maml__sinusoid__seed0"].section("train") == {"steps": 30, "lr": 0.002}
    assert by_key["maml__sinusoid__seed0"].section("config") == {"inner_lr": 0.01}
    assert by_key["maml__omniglot-5w1s__seed1"].section("config") == {"inner_lr": 0.4}
    assert by_key["maml__omniglot-5w1s__seed1"].section("train") == {"steps": 10, "lr": 0.002}
    assert by_key["cnp__sinusoid__seed1"].section("train") == {"steps": 30, "lr": 0.01}
    assert by_key["cnp__sinusoid__seed1"].filename("cpu-torch2.14.1") == (
        "cnp__sinusoid__seed1__cpu-torch2.14.1.json"
    )


def test_cross_product_form():
    suite = parse_suite({"learners": ["a", "b"], "benchmarks": ["x"], "seeds": [3]})
    assert [c.key for c in suite.cells()] == ["a__x__seed3", "b__x__seed3"]


@pytest.mark.parametrize("count", [1, 2, 3, 5, 8, 11])
def test_shards_partition_the_suite(count):
    suite = parse_suite(SUITE)
    shards = [[c.key for c in suite.cells((i, count))] for i in range(count)]
    flat = [k for shard in shards for k in shard]
    assert sorted(flat) == sorted(c.key for c in suite.cells()) and len(set(flat)) == len(flat)
    assert shards == [[c.key for c in suite.cells((i, count))] for i in range(count)]


def test_errors_name_the_problem():
    with pytest.raises(ValueError, match=r"runs\[0\].train: unknown key\(s\) \['stepz'\]"):
        parse_suite({"runs": [{"benchmark": "x", "learners": ["a"], "train": {"stepz": 1}}]})
    with pytest.raises(ValueError, match=r"unknown key\(s\) \['learner'\]"):
        parse_suite({"learner": ["a"], "benchmarks": ["x"]})
    with pytest.raises(ValueError, match="give `runs:` or both `learners:` and `benchmarks:`"):
        parse_suite({"seeds": [0]})
    with pytest.raises(
        ValueError, match=r"--shard takes i/n with 0 <= i < n \(e.g. 0/4\), got '4/4'"
    ):
        parse_shard("4/4")
    assert parse_shard("2/5") == (2, 5)
    with pytest.raises(FileNotFoundError, match="no suite 'nope'.*quickstart"):
        load_suite("nope")


def test_shipped_suites_parse_and_open_with_their_command():
    names = [f.name.removesuffix(".yaml") for f in yaml_files(suite_dir())]
    assert {"quickstart", "sinusoid", "omniglot-5way"} <= set(names)
    for name in names:
        first = (suite_dir() / f"{name}.yaml").read_text().splitlines()[0]
        assert first.startswith(f"# Run with: metazoo bench {name}"), name
        assert load_suite(name).cells()


def test_shipped_suites_name_registered_learners_and_valid_settings():
    import dataclasses

    from metazoo._registry import get_learner
    from metazoo.cards import benchmark_card
    from metazoo.training import TrainConfig

    for path in yaml_files(suite_dir()):
        for cell in load_suite(path.name.removesuffix(".yaml")).cells():
            fields = {f.name for f in dataclasses.fields(get_learner(cell.learner).cls.Config)}
            assert set(cell.section("config")) <= fields, (path.name, cell.key)
            benchmark_card(cell.benchmark)
            TrainConfig(**cell.section("train"))
