"""Paper presets (``registry/suites/paper-*.yaml``): every paper number in a card has exactly one
preset cell that reproduces it, and every preset parses and names things that exist."""

from __future__ import annotations

import dataclasses
from collections import Counter

import pytest

from metazoo._registry import get_learner, list_learners
from metazoo.bench.suite import load_suite, paper_presets
from metazoo.cards import learner_card, list_benchmark_cards, list_learner_cards
from metazoo.models import BACKBONES

PRESETS = paper_presets()


def _paper_numbers() -> set[tuple[str, str]]:
    """Every (learner, benchmark) with a published number in a learner card."""
    return {
        (name, benchmark)
        for name in list_learner_cards()
        for benchmark in learner_card(name).get("results") or {}
    }


def _covered() -> Counter[tuple[str, str]]:
    """How many preset cells test each (learner, benchmark), directly or through ``also_on``."""
    counts: Counter[tuple[str, str]] = Counter()
    for name in PRESETS:
        suite = load_suite(name)
        for cell in {c.key.rsplit("__seed", 1)[0]: c for c in suite.cells()}.values():
            for benchmark in [cell.benchmark, *cell.section("eval").get("also_on", [])]:
                counts[(cell.learner, benchmark)] += 1
    return counts


def test_every_paper_number_has_exactly_one_preset_cell():
    counts = _covered()
    missing = sorted(_paper_numbers() - set(counts))
    twice = sorted(pair for pair, n in counts.items() if n > 1)
    assert missing == [], f"paper numbers without a paper-* preset cell: {missing}"
    assert twice == [], f"paper numbers covered by more than one preset cell: {twice}"


def test_presets_cover_only_rows_with_a_paper_number():
    extra = sorted(set(_covered()) - _paper_numbers())
    assert extra == [], f"preset cells with no paper number in the card: {extra}"


def test_the_known_presets_are_there():
    assert {"paper-maml-omniglot", "paper-protonet-omniglot", "paper-maml-sinusoid"} <= set(PRESETS)
    assert len(PRESETS) >= 20


@pytest.mark.parametrize("name", PRESETS)
def test_preset_states_its_paper_and_deviations(name):
    suite = load_suite(name)
    assert suite.name == name
    assert suite.reference.strip(), f"{name}: no `reference:` (the paper's table)"
    assert suite.deviations, f"{name}: no `deviations:`"
    assert all(text.strip().endswith(".") for text in suite.deviations), suite.deviations


@pytest.mark.parametrize("name", PRESETS)
def test_preset_names_learners_benchmarks_and_settings_that_exist(name):
    suite = load_suite(name)
    learners, benchmarks = set(list_learners()), set(list_benchmark_cards())
    for cell in suite.cells():
        assert cell.learner in learners, f"{name}: unknown learner {cell.learner!r}"
        tested = [cell.benchmark, *cell.section("eval").get("also_on", [])]
        assert set(tested) <= benchmarks, f"{name}: unknown benchmark in {tested}"
        fields = {f.name for f in dataclasses.fields(get_learner(cell.learner).cls.Config)}
        unknown = sorted(set(cell.section("config")) - fields)
        assert unknown == [], f"{name}: {cell.learner} has no config field(s) {unknown}"
        backbone = cell.section("build").get("backbone")
        assert backbone is None or backbone in BACKBONES, f"{name}: unknown backbone {backbone!r}"
        assert cell.section("eval").get("episodes", 0) >= 600, f"{name}: under 600 test episodes"
