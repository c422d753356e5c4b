"""``tools/docs.py``: the README's generated sections are current, the generator checks and
rewrites marked sections, and the Quickstart holds exactly two commands."""

from __future__ import annotations

import re
from pathlib import Path

from metazoo.bench import write_json_atomic
from tests.unit.bench.test_study import _record
from tools.docs import main, render_sections, study_section

README = Path(__file__).resolve().parents[2] / "README.md"


def test_generated_sections_are_current():
    text = README.read_text()
    assert "<!-- metazoo:learners -->" in text
    assert render_sections(text) == text, (
        "README is stale: run `python tools/docs.py` and commit README.md"
    )


def test_quickstart_has_exactly_two_commands():
    text = README.read_text()
    quickstart = text.split("## Quickstart", 1)[1].split("\n## ", 1)[0]
    block = re.search(r"```bash\n(.*?)```", quickstart, re.S).group(1)
    commands = [line for line in block.splitlines() if line.strip() and not line.startswith("#")]
    assert len(commands) == 2
    assert commands[1] == "pip install -e '.[dev]' && pytest"


def test_render_replaces_only_marked_sections():
    text = "a\n<!-- metazoo:x -->\nold\n<!-- /metazoo:x -->\nb\n"
    assert (
        render_sections(text, {"x": lambda: "new"})
        == "a\n<!-- metazoo:x -->\nnew\n<!-- /metazoo:x -->\nb\n"
    )


def test_the_generator_checks_the_readme_and_docs_and_changes_nothing(capsys):
    before = {p: p.read_text() for p in [README, *sorted((README.parent / "docs").glob("*.md"))]}
    assert main(["--check"]) == 0
    assert "all up to date" in capsys.readouterr().out
    assert {p: p.read_text() for p in before} == before


def test_the_generator_names_a_stale_file_and_fails_the_check(tmp_path, capsys):
    page = tmp_path / "page.md"
    page.write_text(
        "<!-- metazoo:x -->\n<!-- /metazoo:x -->\n<!-- metazoo:learners -->\nold\n<!-- /metazoo:learners -->\n"
    )
    assert main(["--check", str(page)]) == 1
    assert f"{page}: stale" in capsys.readouterr().out
    assert main([str(page)]) == 0 and "| `maml` | optimization |" in page.read_text()
    assert main(["--check", str(page)]) == 0


def test_metazoo_has_no_docs_subcommand():
    from metazoo.cli.main import SUBCOMMANDS

    assert "docs" not in SUBCOMMANDS


def test_paper_numbers_keep_intervals_deviations_and_secondary_marks_apart():
    """± is a 95% interval, (σ …) a standard deviation over seeds, ² a secondary source."""
    from tools.docs import learner_table

    rows = {row.split(" | ")[0].strip("| `"): row for row in learner_table().splitlines()}
    assert "| 96.2 (σ 0.5) | 46.7 (σ 0.4) |" in rows["anil"]  # Raghu et al.: std over 3 seeds
    assert "| 52.15 (σ 0.26) ² |" in rows["mamlpp"]
    assert "| 98.7 ± 0.4 |" in rows["maml"]
    assert "| 98.3 ± 0.5 ² |" in rows["fomaml"]
    assert "± 0.5 |" not in rows["anil"]


def test_the_study_section_renders_contrasts_and_says_pending_without_results(tmp_path):
    assert study_section(tmp_path / "study-tasks").startswith("**Pending**: no results")
    for variant, scores in (
        ("train-val@10", [50.0, 60.0, 70.0]),
        ("within@10", [50.0, 61.0, 70.0]),
    ):
        rec = {**_record(variant, scores), "seconds": 90.0}
        write_json_atomic(rec, tmp_path / f"{rec['cell']}__cpu.json")
    text = study_section(tmp_path)
    assert text.startswith("2 cells from ") and "3 min of wall time in all" in text
    assert "| omniglot-5w1s | maml | 10 | within |" in text
    assert "`within` is not distinguishable from `train-val` (accuracy +0.33" in text


def test_pending_rows_name_where_they_run():
    from tools.paper_docs import paper_table

    lines = {tuple(r.split(" | ")[:2]): r for r in paper_table(Path("/nonexistent")).splitlines()}
    assert (
        "pending (GPU): `python benchmarks/gpu_paper_rows.py --preset paper-maml-omniglot`"
        in (lines[("| `maml`", "omniglot-5w1s")])
    )
    snail = lines[("| `snail`", "omniglot-20w1s")]  # the 20-way cell trains on 16 tasks a step
    assert "pending (GPU: 40,000 meta-updates of 16 tasks do not fit two CPU cores)" in snail
    assert (
        "`metazoo bench paper-protonet-omniglot --out " in lines[("| `protonet`", "omniglot-5w1s")]
    )
