"""``lab/docs/generate.py``: the README's generated sections and the site's generated pages are current,
the generator checks and rewrites marked sections, and the Quickstart holds exactly two commands."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import tomllib

from lab.docs.generate import main, render_sections, study_section
from lab.docs.site_docs import extras_table, site_pages, write_pages
from metazoo.bench import write_json_atomic
from tests.helpers.records import study_record

pytestmark = pytest.mark.lab

README = Path(__file__).resolve().parents[2] / "README.md"


def test_generated_sections_are_current():
    text = README.read_text()
    assert "<!-- metazoo:learners -->" in text
    assert render_sections(text) == text, (
        "README is stale: run `python -m lab.docs.generate` and commit README.md"
    )


def test_quickstart_has_exactly_two_commands():
    text = README.read_text()
    quickstart = text.split("## Quickstart", 1)[1].split("\n## ", 1)[0]
    block = re.search(r"```bash\n(.*?)```", quickstart, re.S).group(1)
    commands = [line for line in block.splitlines() if line.strip() and not line.startswith("#")]
    assert commands == [  # the main job needs no extra; the tests need `dev`
        "pip install -e . && metazoo bench quickstart",
        "pip install -e '.[dev]' && pytest",
    ]


def test_readme_is_short_and_links_every_page_of_the_site():
    text = README.read_text()
    assert len(text.splitlines()) <= 150
    pages = sorted(
        p.relative_to(README.parent).as_posix() for p in (README.parent / "docs").glob("*.md")
    )
    pages.remove("docs/index.md")  # the site's home page restates the README's introduction
    missing = [p for p in pages if f"]({p})" not in text]
    assert missing == [], f"README links no page {missing}"
    assert "](docs/learners/index.md)" in text and "](docs/reference/metazoo.md)" in text


def test_readme_and_docs_use_no_internal_vocabulary():
    pages = [README, *sorted((README.parent / "docs").rglob("*.md"))]
    for page in pages:
        text = page.read_text()
        for word in (r"issue \d", "lent ", "borrowed", "device minutes", "this project's"):
            assert not re.search(word, text), f"{page.name}: {word!r}"


def test_the_generated_pages_of_the_site_are_current():
    assert write_pages(check=True) == [], "run `python -m lab.docs.generate` and commit docs/"
    pages = site_pages()
    maml = pages[README.parent / "docs" / "learners" / "maml.md"]
    assert "| omniglot-5w1s | 98.7 ± 0.4 | Finn et al. 2017, Table 1 |" in maml
    assert (
        "| `inner_lr` | `0.01` | Inner-loop learning rate alpha (the initial value of learned rates). |"
        in maml
    )
    fomaml = pages[README.parent / "docs" / "learners" / "fomaml.md"]
    assert (
        "| `first_order` | `True` |" in fomaml
        and "where this name sets `first_order=True`" in fomaml
    )
    api = pages[README.parent / "docs" / "reference" / "metazoo.md"]
    import metazoo

    assert [line[4:] for line in api.splitlines() if line.startswith(":::")] == [
        f"{module}.{name}" for name, module in metazoo._EXPORTS.items()
    ]


def test_the_extras_table_lists_every_extra_of_pyproject():
    extras = tomllib.loads((README.parent / "pyproject.toml").read_text())["project"][
        "optional-dependencies"
    ]
    rows = [
        line.split(" | ")[0].strip("| `")
        for line in extras_table().splitlines()[2:]
        if line.startswith("| `")
    ]
    assert rows == list(extras) and "docs" in rows
    assert "| `plotting` | `matplotlib>=3.7` | `metazoo plot`" in extras_table()


def test_render_replaces_only_marked_sections():
    text = "a\n<!-- metazoo:x -->\nold\n<!-- /metazoo:x -->\nb\n"
    assert (
        render_sections(text, {"x": lambda: "new"})
        == "a\n<!-- metazoo:x -->\nnew\n<!-- /metazoo:x -->\nb\n"
    )


def test_the_generator_checks_the_readme_and_docs_and_changes_nothing(capsys):
    before = {p: p.read_text() for p in [README, *sorted((README.parent / "docs").rglob("*.md"))]}
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
    assert main([str(page)]) == 0
    assert "| [`maml`](docs/learners/maml.md) | optimization |" in page.read_text()
    assert main(["--check", str(page)]) == 0


def test_metazoo_has_no_docs_subcommand():
    from metazoo.cli.main import SUBCOMMANDS

    assert "docs" not in SUBCOMMANDS


def test_paper_numbers_keep_intervals_deviations_and_secondary_marks_apart():
    """± is a 95% interval, (σ …) a standard deviation over seeds, ² a secondary source."""
    from lab.docs.generate import learner_table

    rows = {
        match.group(1): row
        for row in learner_table().splitlines()
        if (match := re.match(r"\| \[`(\w+)`\]", row))
    }
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
        rec = {**study_record(variant, scores), "seconds": 90.0}
        write_json_atomic(rec, tmp_path / f"{rec['cell']}__cpu.json")
    text = study_section(tmp_path)
    assert text.startswith("2 cells from ") and "3 min of wall time in all" in text
    assert "| omniglot-5w1s | maml | 10 | within |" in text
    assert "`within` is not distinguishable from `train-val` (accuracy +0.33" in text


def test_pending_rows_name_where_they_run():
    from lab.docs.paper_docs import paper_table

    lines = {tuple(r.split(" | ")[:2]): r for r in paper_table(Path("/nonexistent")).splitlines()}
    assert (
        "pending (GPU): `python lab/gpu/gpu_paper_rows.py --preset paper-maml-omniglot`"
        in (lines[("| `maml`", "omniglot-5w1s")])
    )
    snail = lines[("| `snail`", "omniglot-20w1s")]  # the 20-way cell trains on 16 tasks a step
    assert "pending (GPU: 40,000 meta-updates of 16 tasks do not fit two CPU cores)" in snail
    assert (
        "`metazoo bench paper-protonet-omniglot --out " in lines[("| `protonet`", "omniglot-5w1s")]
    )
