"""Paper rows: the status rule, rows from a preset's results folder, pending rows, time to target."""

from __future__ import annotations

import math

import pytest

from lab.docs.paper_rows import diagnosis, first_reached, paper_presets, paper_rows, paper_status
from metazoo.bench import parse_suite, write_json_atomic
from tests.helpers.records import record


def test_status_uses_the_combined_intervals():
    assert paper_status(98.0, 0.5, {"value": 98.8, "ci95": 0.4}) == "below"  # 0.8 > 0.64
    assert paper_status(98.3, 0.5, {"value": 98.8, "ci95": 0.4}) == "matches"  # 0.5 <= 0.64
    assert paper_status(99.5, 0.2, {"value": 98.8}) == "above"  # no paper interval: only ours
    assert paper_status(98.9, 0.2, {"value": 98.8, "std": 0.5}) == "matches"  # 0.1 <= 0.2
    assert paper_status(97.0, 0.2, {"value": 98.8, "std": 5.0}) == "below"  # σ is not a CI
    assert paper_status(90.0, 1.0, None) == "–"


def test_first_reached_is_the_first_validation_at_the_target():
    history = [
        {"kind": "train", "step": 1, "loss": 1.0},
        {"kind": "val", "step": 250, "mean": 97.0, "seconds": 60.0},
        {"kind": "val", "step": 500, "mean": 98.9, "seconds": 120.0},
        {"kind": "val", "step": 750, "mean": 99.1, "seconds": 180.0},
    ]
    assert first_reached(history, 98.8)["step"] == 500
    assert first_reached(history, 99.5) is None


SUITE = {
    "name": "paper-unit",
    "eval": {"episodes": 10},
    "runs": [
        {"benchmark": b, "learners": ["protonet"], "eval": {"also_on": [b.replace("5w", "20w")]}}
        for b in ("omniglot-5w1s", "omniglot-5w5s")
    ],
}


def test_rows_come_from_the_results_and_missing_ones_are_pending(tmp_path):
    data = record("protonet", "omniglot-5w1s", 0, [98.0] * 5 + [100.0] * 5)
    also = record("protonet", "omniglot-20w1s", 0, [90.0] * 10)
    data["also_on"] = {"omniglot-20w1s": also["result"]}
    data["train"] = {
        "final_step": 500,
        "seconds": 600.0,  # the last call's: the run resumed once
        "total_seconds": 900.0,
        "history": [
            {"kind": "val", "step": step, "mean": mean}
            for step, mean in [(250, 96.0), (300, 96.5), (400, 97.4), (500, 98.2)]
        ],
    }
    write_json_atomic(data, tmp_path / "a.json")
    rows = paper_rows(parse_suite(SUITE), tmp_path)
    assert [(r.benchmark, r.status) for r in rows] == [
        ("omniglot-5w1s", "matches"),  # 99.0 ± 0.66 against 98.8
        ("omniglot-20w1s", "below"),  # 90.0 against 96.0
        ("omniglot-5w5s", "pending"),
        ("omniglot-20w5s", "pending"),
    ]
    first, also_row = rows[0], rows[1]
    assert first.cell.mean == pytest.approx(99.0) and first.paper["value"] == 98.8
    assert first.budget["steps"] == 500 and first.budget["best_val"] == 98.2
    assert first.budget["minutes"] == 15.0
    assert also_row.budget is None and also_row.trained_on == "omniglot-5w1s"
    # below: diagnosed from the model's 5-way validation curve, which projects nothing for 20-way
    assert also_row.diagnosis == (
        "still rising (+2.3 ± 0.1 points per doubling of training over the last half): budget"
    )
    assert first.diagnosis == ""  # only a below row carries one
    assert first.second_seed is None and not first.seeds_disagree


def test_diagnosis_fits_the_last_half_of_the_curve_against_log_steps():
    early = [{"step": 100, "mean": 50.0}, {"step": 400, "mean": 80.0}]  # before the last half
    # +2 points per doubling exactly: 90.0 at 512, 91.0 at 724.08, 91.93 at 1000
    rising = [*early, *({"step": s, "mean": 90 + 2 * math.log2(s / 512)} for s in (512, 724, 1000))]
    # from 91.93 at 1000 steps, +6.87 points is 3.43 doublings: 1000 * 2**3.43 = 10,809 steps
    assert diagnosis(rising, 1000, target=98.8) == (
        "still rising (+2.0 ± 0.0 points per doubling of training over the last half; at that rate"
        " it reaches 98.8 after about 11,000 steps): budget"
    )
    assert diagnosis(rising, 1000, target=91.0).endswith("last half): budget")  # already past it
    flat = [*early, *({"step": s, "mean": m} for s, m in [(600, 90.0), (800, 90.1), (1000, 90.0)])]
    assert diagnosis(flat, 1000) == (
        "flat (+0.0 ± 0.2 points per doubling of training over the last half):"
        " not explained by budget"
    )
    noisy = [*early, *({"step": s, "mean": m} for s, m in [(600, 90.0), (800, 93.0), (1000, 90.5)])]
    assert diagnosis(noisy, 1000) == (
        "within noise (+1.0 ± 4.2 points per doubling of training over the last half):"
        " budget not ruled out"
    )
    assert diagnosis([], 1000).startswith("no validation curve")
    assert diagnosis(early, 1000).startswith("too few validation points")


def test_a_second_episode_seed_is_kept_and_a_disagreement_reported(tmp_path):
    data = record("protonet", "omniglot-5w1s", 0, [98.0] * 5 + [100.0] * 5)
    data["second_seed"] = {"seed": 1, "mean": 95.0, "ci95": 0.5, "n": 10}
    write_json_atomic(data, tmp_path / "a.json")
    row = paper_rows(parse_suite(SUITE), tmp_path)[0]
    assert row.second_seed["mean"] == 95.0
    assert row.seeds_disagree  # |99.0 - 95.0| > hypot(0.66, 0.5)
    row.second_seed = {**row.second_seed, "mean": 98.9}
    assert not row.seeds_disagree


def test_the_built_in_presets_are_listed():
    assert {"paper-protonet-omniglot", "paper-matchingnet-omniglot"} <= set(paper_presets())


def test_the_readme_row_says_when_validation_first_reached_the_paper(tmp_path):
    from lab.docs.paper_docs import measured_table

    data = record("protonet", "omniglot-5w1s", 0, [98.0] * 5 + [100.0] * 5)
    data["train"] = {
        "final_step": 3000,
        "seconds": 1800.0,
        "history": [
            {"kind": "val", "step": 300, "mean": 97.0, "seconds": 200.0},
            {"kind": "val", "step": 600, "mean": 98.9, "seconds": 610.0},  # paper: 98.8
            {"kind": "val", "step": 3000, "mean": 99.0, "seconds": 1790.0},
        ],
    }
    folder = tmp_path / "paper-protonet-omniglot"
    folder.mkdir()
    write_json_atomic(data, folder / "a.json")
    row = next(line for line in measured_table(tmp_path).splitlines() if "omniglot-5w1s" in line)
    assert (
        "| 3000 episodes, 30 min; the paper's 98.8 on validation at episode 600 (10 min) |" in row
    )
