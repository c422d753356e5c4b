"""`metazoo plot DIR`: learning curves and score-vs-shots figures as PNG and PDF."""

from __future__ import annotations

from metazoo.bench import parse_suite, run_suite
from metazoo.bench.plot import score_vs_shots
from metazoo.bench.results import load_results
from metazoo.cli.main import main
from metazoo.testing import registered


def test_plot_writes_curves_and_shots_figures(tmp_path, capsys):
    results = tmp_path / "res"
    with registered() as tiny:
        suite = parse_suite({
            "name": "unit", "seeds": [0],
            "train": {"steps": 4, "meta_batch": 2, "val_every": 2, "val_episodes": 2, "log_every": 1},
            "eval": {"episodes": 3, "shots": [2, 10]},
            "runs": [{"benchmark": "sinusoid", "learners": [tiny]}],
        })  # fmt: skip
        run_suite(suite, results)
    points = score_vs_shots(load_results(results))["sinusoid"][tiny]
    assert sorted(points) == [2, 5, 10]  # the card's 5 test shots plus the two extra evaluations
    assert main(["plot", str(results), "--out", str(tmp_path / "fig")]) == 0
    names = sorted(p.name for p in (tmp_path / "fig").iterdir())
    assert names == [
        "curves-sinusoid.pdf",
        "curves-sinusoid.png",
        "shots-sinusoid.pdf",
        "shots-sinusoid.png",
    ]
    assert (tmp_path / "fig" / "curves-sinusoid.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (tmp_path / "fig" / "shots-sinusoid.pdf").read_bytes()[:5] == b"%PDF-"
    assert capsys.readouterr().out.count("wrote ") == 4
