"""The task study (``lab/docs/study.py``): paired contrasts between a study suite's conditions
and the sentences the docs page shows. The suites themselves: ``tests/unit/bench/test_study_suites.py``."""

from __future__ import annotations

from pathlib import Path

import pytest

from lab.docs.study import contrasts, findings, to_markdown
from metazoo.bench import write_json_atomic
from tests.helpers.records import study_record


def test_contrasts_are_paired_t_tests_against_the_reference(tmp_path: Path):
    base = [60.0, 80.0, 40.0, 100.0, 20.0]
    better = [s + d for s, d in zip(base, [10.0, 20.0, 0.0, 10.0, 10.0])]
    for variant, scores in (("train-val@10", base), ("train-train@10", better)):
        rec = study_record(variant, scores)
        write_json_atomic(rec, tmp_path / f"{rec['cell']}__cpu.json")
    reference, other = contrasts(tmp_path)
    rows = {c.condition: c for c in (reference, other)}
    tt = rows["train-train"]
    assert tt.difference == pytest.approx(10.0) and tt.episodes == 5
    # differences 10, 20, 0, 10, 10: sd sqrt(50), t = 10 / (sqrt(50)/sqrt(5)) = sqrt(10)
    assert tt.p_value == pytest.approx(0.03411, abs=1e-4)
    assert rows["train-val"].difference == 0.0 and rows["train-val"].p_value == 1.0
    assert "| omniglot-5w1s | maml | 10 | train-train |" in to_markdown([reference, other])
    (sentence,) = findings([reference, other])  # p = 0.034 < 0.05, higher accuracy is better
    assert (
        "`train-train` is better than `train-val` (accuracy +10.00 ± 8.78 points, p = 0.034"
        in sentence
    )
    assert "not distinguishable" in findings([reference, other], alpha=0.01)[0]


def test_a_condition_without_its_reference_names_what_to_run(tmp_path: Path):
    rec = study_record("within@10", [50.0, 60.0])
    write_json_atomic(rec, tmp_path / f"{rec['cell']}__cpu.json")
    with pytest.raises(ValueError, match="no 'train-val' cell at budget 10 to pair with"):
        contrasts(tmp_path)
