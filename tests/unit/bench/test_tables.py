"""Tables from result files: aggregation over seeds, bold best, ties marked, paper numbers, bib."""

from __future__ import annotations

import csv
import io
import json
import math
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from metazoo.bench import collect, to_bib, to_csv, to_latex, to_markdown, write_tables
from metazoo.bench.runner import write_json_atomic
from metazoo.cards import learner_card
from metazoo.evaluation import EvalResult, compare
from tests.helpers.records import record

PROTONET = [90.0, 92.0, 88.0, 91.0, 89.0, 90.0, 93.0, 87.0, 90.0, 90.0]
MAML = [89.0, 92.0, 88.0, 90.0, 89.0, 91.0, 92.0, 87.0, 90.0, 89.0]  # close to protonet
FOMAML = [s - 10.0 + (i % 3) for i, s in enumerate(PROTONET)]  # clearly worse


@pytest.fixture
def results_dir(tmp_path: Path) -> Path:
    recs = [
        record("protonet", "omniglot-5w1s", 0, PROTONET),
        record("protonet", "omniglot-5w1s", 1, [s + 1.0 for s in PROTONET]),
        record("maml", "omniglot-5w1s", 0, MAML),
        record("maml", "omniglot-5w1s", 1, [s + 1.0 for s in MAML]),
        record("fomaml", "omniglot-5w1s", 0, FOMAML, steps=80),
        record("fomaml", "omniglot-5w1s", 1, FOMAML, steps=80),
        record("maml", "sinusoid", 0, [1.0, 1.2, 0.8, 1.1, 0.9], "mse", train_seconds=90.0),
        record("cnp", "sinusoid", 0, [2.0, 2.2, 1.9, 2.1, 2.3], "mse", train_seconds=30.0),
        record("snail", "omniglot-5w1s", 0, [0.0], status="failed", error="RuntimeError: boom"),
    ]
    for rec in recs:
        write_json_atomic(rec, tmp_path / f"{rec['cell']}__cpu-torch2.x.json")
    return tmp_path


EXPECTED = ["protonet__omniglot-5w1s__seed0", "maml__omniglot-5w1s__seed0", "fomaml__omniglot-5w1s__seed0",
            "snail__omniglot-5w1s__seed0", "matchingnet__omniglot-5w1s__seed0", "maml__sinusoid__seed0",
            "cnp__sinusoid__seed0"]  # fmt: skip


def test_aggregation_marks_and_order(results_dir):
    res = collect(results_dir, EXPECTED)
    assert res.learners == ["protonet", "maml", "fomaml", "cnp"] and res.benchmarks == [
        "omniglot-5w1s",
        "sinusoid",
    ]
    proto = res.cells[("protonet", "omniglot-5w1s")]
    assert proto.scores == [s + 0.5 for s in PROTONET] and proto.seeds == [0, 1]
    assert proto.mean == pytest.approx(90.5) and proto.best
    assert proto.seed_std == pytest.approx(math.sqrt(0.5))
    maml, fomaml = res.cells[("maml", "omniglot-5w1s")], res.cells[("fomaml", "omniglot-5w1s")]
    assert maml.paired and maml.tied_with_best and not maml.best
    assert fomaml.tied_with_best is False and fomaml.p_vs_best < 1e-6
    # the p-value is the paired t-test of the seed-averaged scores (differences 1,0,0,1,0,-1,1,0,0,1)
    assert maml.p_vs_best == pytest.approx(0.1931, abs=5e-4)
    assert res.cells[("maml", "sinusoid")].best  # lower MSE wins
    assert res.cells[("cnp", "sinusoid")].tied_with_best is False
    assert [r["cell"] for r in res.failed] == ["snail__omniglot-5w1s__seed0"]
    assert res.missing == ["matchingnet__omniglot-5w1s__seed0"]


def test_a_column_on_different_episodes_is_refused(tmp_path):
    write_json_atomic(record("maml", "omniglot-5w1s", 0, MAML), tmp_path / "a.json")
    write_json_atomic(
        record("protonet", "omniglot-5w1s", 0, PROTONET, eval_seed=1), tmp_path / "b.json"
    )
    with pytest.raises(ValueError, match=r"maml and protonet were evaluated on different episodes"):
        collect(tmp_path)


def test_a_column_with_other_queries_is_refused_naming_the_option(tmp_path):
    write_json_atomic(record("maml", "omniglot-5w1s", 0, MAML), tmp_path / "a.json")
    other = record("protonet", "omniglot-5w1s", 0, PROTONET)
    other["result"]["protocol"]["sampler"]["queries"] = 5
    write_json_atomic(other, tmp_path / "b.json")
    with pytest.raises(ValueError, match=r"sampler option queries: 15 vs 5"):
        collect(tmp_path)


def _at(data: dict, sha: str | None, dirty: bool = False) -> dict:
    data["environment"]["git"] = None if sha is None else {"sha": sha, "dirty": dirty}
    return data


def test_results_of_uncommitted_changes_are_refused_unless_a_draft(tmp_path):
    write_json_atomic(_at(record("maml", "omniglot-5w1s", 0, MAML), "a" * 40), tmp_path / "a.json")
    dirty = _at(record("protonet", "omniglot-5w1s", 0, PROTONET), "a" * 40, dirty=True)
    write_json_atomic(dirty, tmp_path / "b.json")
    with pytest.raises(ValueError, match=r"b.json came from uncommitted changes \(a{40}-dirty\)"):
        collect(tmp_path)
    draft = collect(tmp_path, allow_dirty=True)
    assert "DRAFT: results of uncommitted changes" in to_markdown(draft)


def test_results_of_two_commits_are_refused(tmp_path):
    write_json_atomic(_at(record("maml", "omniglot-5w1s", 0, MAML), "a" * 40), tmp_path / "a.json")
    older = _at(record("protonet", "omniglot-5w1s", 0, PROTONET), "b" * 40)
    write_json_atomic(older, tmp_path / "b.json")
    with pytest.raises(ValueError, match="these results come from 2 code versions"):
        collect(tmp_path, allow_dirty=True)


def _paper(learner: str, bench: str) -> str:
    found = learner_card(learner)["results"][bench]
    text = f"{found['value']:.2f}" + (f" ± {found['ci95']:.2f}" if "ci95" in found else "")
    text += "" if found["verified"] else "‡"
    return f"{text} ({found['source'].split(',')[0]})"  # the paper the number is quoted from


def test_markdown_shows_best_ties_paper_numbers_and_notes(results_dir):
    md = to_markdown(collect(results_dir, EXPECTED))
    rows = {
        line.split(" | ")[0].strip("| "): line for line in md.splitlines() if line.startswith("| ")
    }
    assert rows["Method"] == (
        "| Method | omniglot-5w1s, accuracy % ↑ (ours) | paper | sinusoid, MSE ↓ (ours) | paper |"
    )
    proto = rows["ProtoNet"].split(" | ")
    assert proto[1].startswith("**90.50 ± ") and proto[1].endswith("**")
    assert proto[2] == _paper("protonet", "omniglot-5w1s")
    maml = rows["MAML"].split(" | ")
    assert maml[1].endswith("†") and not maml[1].startswith("**")
    assert maml[2] == _paper("maml", "omniglot-5w1s") and maml[3].startswith(
        "**1.000 ± 0.139**"
    )  # s = sqrt(0.025)
    # fomaml: 80,83,80,81,80,82,83,78,82,80: mean 80.9, s^2 = 22.9/9, ci = 1.96 s / sqrt(10) = 0.989
    assert rows["FOMAML"].split(" | ")[1] == "80.90 ± 0.99"
    assert rows["CNP"].split(" | ")[1] == "–"
    assert (
        "- omniglot-5w1s: 10 test episodes (seed 0), 5-way 1-shot, 15 queries per class; backbone: conv4; test inner steps: maml 3, fomaml 3; BN policy: transductive; precision: float32, TF32 off; training: protonet 50 steps, meta-batch 4; maml 50 steps, meta-batch 4; fomaml 80 steps, meta-batch 4; training seeds: 0, 1."
        in md
    )
    # sinusoid: one budget, and the records carry each cell's training wall time
    assert (
        "training: 50 steps, meta-batch 4; training wall time (min): maml 1.5, cnp 0.5; "
        "training seeds: 0." in md
    )
    assert "- Environment: cpu, torch 2.x, metazoo 0.1.0." in md
    assert "- Failed: snail__omniglot-5w1s__seed0: RuntimeError: boom" in md
    assert "- Missing: matchingnet__omniglot-5w1s__seed0 (no result file)" in md


def test_csv_has_every_number(results_dir):
    rows = list(csv.DictReader(io.StringIO(to_csv(collect(results_dir, EXPECTED)))))
    by = {(r["learner"], r["benchmark"]): r for r in rows}
    assert len(rows) == 5
    maml = by[("maml", "omniglot-5w1s")]
    assert float(maml["mean"]) == pytest.approx(90.2) and maml["tied_with_best"] == "True"
    assert (
        maml["seeds"] == "[0, 1]"
        and float(maml["paper_value"]) == learner_card("maml")["results"]["omniglot-5w1s"]["value"]
    )
    assert by[("protonet", "omniglot-5w1s")]["best"] == "True"


def _unescaped(char: str, text: str) -> int:
    return len(re.findall(rf"(?<!\\){re.escape(char)}", text))


def test_latex_is_a_well_formed_booktabs_table(results_dir, tmp_path):
    tex = to_latex(collect(results_dir, EXPECTED))
    lines = tex.splitlines()
    order = [
        lines.index(s)
        for s in (r"\begin{table}[t]", r"\toprule", r"\midrule", r"\bottomrule", r"\end{table}")
    ]
    assert order == sorted(order)
    assert r"\begin{tabular}{lcccc}" in tex
    body = lines[lines.index(r"\midrule") + 1 : lines.index(r"\bottomrule")]
    assert len(body) == 4 and all(_unescaped("&", row) == 4 and row.endswith(r"\\") for row in body)
    assert body[0].startswith(r"ProtoNet & \textbf{90.50 $\pm$")
    assert body[0].split(" & ")[2] == r"98.80~\cite{snell2017prototypical}"  # beside its number
    assert body[1].split(" & ")[1].endswith(r"$^\dagger$")
    assert _unescaped("{", tex) == _unescaped("}", tex)
    assert _unescaped("_", tex.replace(r"\_", "")) == 0 and "%" not in tex.replace(r"\%", "")
    if shutil.which("pdflatex"):
        doc = tmp_path / "doc.tex"
        doc.write_text("\\documentclass{article}\\usepackage{booktabs}\\usepackage[utf8]{inputenc}"
                       f"\\begin{{document}}{tex}\\bibliographystyle{{plain}}\\end{{document}}")  # fmt: skip
        run = subprocess.run(
            ["pdflatex", "-interaction=nonstopmode", doc.name],
            cwd=tmp_path,
            capture_output=True,
            timeout=120,
        )
        assert run.returncode == 0, run.stdout.decode()[-2000:]


def test_bib_cites_every_quoted_paper_once_and_write_tables_writes_all(results_dir, tmp_path):
    res = collect(results_dir, EXPECTED)
    bib = to_bib(res)
    cited = set(re.findall(r"\\cite\{([^}]+)\}", to_latex(res)))
    assert cited == {"snell2017prototypical", "finn2017maml", "nichol2018reptile"}
    assert all(bib.count(f"{{{key},") == 1 for key in cited) and bib.count("@") == len(cited)
    paths = write_tables(res, tmp_path / "out")
    assert sorted(p.name for p in paths) == ["references.bib", "table.csv", "table.md", "table.tex"]
    assert (tmp_path / "out" / "table.md").read_text() == to_markdown(res)


def test_seeds_on_different_episodes_are_refused(tmp_path):
    write_json_atomic(record("maml", "omniglot-5w1s", 0, MAML), tmp_path / "a.json")
    write_json_atomic(record("maml", "omniglot-5w1s", 1, MAML, eval_seed=3), tmp_path / "b.json")
    with pytest.raises(
        ValueError, match="maml on omniglot-5w1s: the seeds were evaluated on different episodes"
    ):
        collect(tmp_path)


def test_paired_p_value_agrees_with_compare(results_dir):
    res = collect(results_dir)
    data = json.loads(next(results_dir.glob("maml__omniglot-5w1s__seed0*")).read_text())
    assert EvalResult.from_dict(data["result"]).scores == MAML
    a = EvalResult.from_dict(data["result"])
    b = EvalResult.from_dict(
        json.loads(next(results_dir.glob("protonet__omniglot-5w1s__seed0*")).read_text())["result"]
    )
    # per-seed shifts of +1 cancel in the differences, so the seed-averaged test equals seed 0's
    assert res.cells[("maml", "omniglot-5w1s")].p_vs_best == pytest.approx(compare(a, b).p_value)


def test_cuda_results_say_which_tf32_paths_were_on(tmp_path):
    rec = record("maml", "sinusoid", 0, [1.0, 2.0], "mse")
    rec["result"]["protocol"]["tf32"] = True
    rec["environment"]["precision"] = {"tf32_matmul": False, "tf32_cudnn": True}
    write_json_atomic(rec, tmp_path / "a.json")
    assert "precision: float32, TF32 matmul off, cuDNN on;" in to_markdown(collect(tmp_path))
