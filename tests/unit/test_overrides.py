"""The one typed override parser: YAML text and loose YAML values checked against field types."""

from __future__ import annotations

import typing
from dataclasses import dataclass

import pytest

from metazoo.bench.suite import parse_suite
from metazoo.overrides import coerce, load_value, split_overrides, typed_values
from metazoo.training import TrainConfig


@dataclass
class Settings:
    """A dataclass with the field types configs use."""

    lr: float = 0.1
    steps: int = 1
    name: str = "x"
    shape: tuple[int, ...] | None = None


@pytest.mark.parametrize("text", ["1e-3", "1E-3", "+1e-3", "1.0e-3", "0.001"])
def test_exponent_numbers_are_floats(text):
    assert coerce("lr", text, float) == 0.001
    assert load_value(text) == 0.001 and isinstance(load_value(text), float)


def test_values_are_typed_and_checked():
    assert coerce("steps", "3", int) == 3
    assert coerce("shape", "[1, 28, 28]", typing.get_type_hints(Settings)["shape"]) == (1, 28, 28)
    assert coerce("name", "1e-3", str) == "1e-3"  # a str field takes the text as written
    assert load_value("1e3x") == "1e3x"
    with pytest.raises(TypeError, match=r"^steps='1e-3': expected int, got float$"):
        coerce("steps", "1e-3", int)
    with pytest.raises(TypeError, match=r"^steps=True: expected int, got bool$"):
        coerce("steps", True, int)


def test_typed_values_names_where_a_bad_value_came_from():
    assert typed_values(Settings, {"lr": "1e-3", "shape": [2, 3]}) == {"lr": 0.001, "shape": (2, 3)}
    with pytest.raises(
        TypeError, match=r"^suite\.yaml\.train: lr='fast': expected float, got str$"
    ):
        typed_values(Settings, {"lr": "fast"}, "suite.yaml.train")


def test_split_overrides_routes_keys_and_lists_the_valid_ones():
    found = split_overrides(["a.lr=1e-3", "name=y", "b.steps=2"], {"a": Settings, "b": TrainConfig})
    assert found == {"a": {"lr": 0.001, "name": "y"}, "b": {"steps": 2}}
    with pytest.raises(
        TypeError, match=r"^'lr' is both a a and a b setting: write a\.lr=\.\.\. or"
    ):
        split_overrides(["lr=1"], {"a": Settings, "b": TrainConfig})
    with pytest.raises(TypeError, match=r"^unknown key 'nope'; the settings takes: lr, steps"):
        split_overrides(["nope=1"], {"a": Settings}, {"a": "the settings"})


def test_suite_settings_are_checked_by_the_same_parser():
    suite = parse_suite(
        {"learners": ["maml"], "benchmarks": ["sinusoid"], "train": {"lr": "1e-3", "steps": 5}}
    )
    assert suite.cells()[0].section("train") == {"lr": 0.001, "steps": 5}
    with pytest.raises(TypeError, match=r"^<suite>\.train: steps='many': expected int, got str$"):
        parse_suite({"learners": ["maml"], "benchmarks": ["sinusoid"], "train": {"steps": "many"}})
