"""Study suites: variants of one learner as separate cells; the built-in study pairs each condition
with its reference (the contrasts: ``tests/tools/test_study.py``)."""

from __future__ import annotations

from metazoo.bench import load_suite, parse_suite


def test_variants_of_one_learner_are_separate_cells_with_their_own_train_sampler():
    suite = parse_suite({"seeds": [0], "runs": [
        {"benchmark": "omniglot-5w1s", "learners": ["maml"], "variant": "train-val@10"},
        {"benchmark": "omniglot-5w1s", "learners": ["maml"], "variant": "train-train@10",
         "train_sampler": {"mode": "train-train"}},
    ]})  # fmt: skip
    first, second = suite.cells()
    assert first.key == "maml+train-val@10__omniglot-5w1s__seed0"
    assert second.key == "maml+train-train@10__omniglot-5w1s__seed0"
    assert second.learner == "maml" and second.section("train_sampler") == {"mode": "train-train"}


def test_built_in_study_suite_pairs_every_condition_with_its_reference():
    cells = load_suite("study-tasks").cells()
    labels = {(c.label, c.benchmark) for c in cells}
    for cell in cells:
        budget = cell.variant.rpartition("@")[2]
        assert (f"{cell.learner}+train-val@{budget}", cell.benchmark) in labels
        assert "mode" not in cell.section("sampler")  # conditions change training episodes only
    assert len(cells) == 20
