"""``python -m lab.docs.generate [--check] [FILE ...]``: regenerate this repository's generated Markdown.

Nothing between ``<!-- metazoo:NAME -->`` and ``<!-- /metazoo:NAME -->`` is typed by hand: the
README's learner table comes from the cards, its measured results and the pages' paper, results
and speed tables from the committed result files in ``benchmarks/results``, the extras table from
``pyproject.toml``, the suites from ``registry/suites``, and each speed run's own table
``benchmarks/tables/speed-*.md`` from its result file. Whole pages of the documentation site are
generated too (one per learner, the API reference: :mod:`lab.docs.site_docs`). Without FILE, README.md,
every ``docs/**/*.md``, those pages and tables are rewritten; ``--check`` changes nothing and exits 1
when one is stale (the tests check the same). A development tool: it edits this checkout, not a
user's. The site itself is built with ``mkdocs build --strict`` (``mkdocs.yml``).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
if __package__ in (None, ""):  # run as a script: import the lab from this checkout
    sys.path.insert(0, str(REPO))

import metazoo  # noqa: E402
from lab.docs import reproductions_section  # noqa: E402
from lab.docs.paper_docs import (  # noqa: E402
    curve_figures,
    measured_table,
    paper_table,
    paper_text,
    presets_table,
)
from lab.docs.site_docs import (  # noqa: E402
    benchmarks_table,
    extras_table,
    learning_run,
    quickstart_time,
    suites_table,
    write_pages,
)  # noqa: E402
from lab.docs.study import contrasts, findings, to_markdown  # noqa: E402
from lab.reproductions.common import record_versions  # noqa: E402
from lab.speed.docs import (  # noqa: E402
    RESULTS,
    load_results,
    readme_speed_table,
    speed_sections,
)
from lab.speed.report import render_markdown, result_stem  # noqa: E402
from metazoo.bench.results import collect  # noqa: E402
from metazoo.cards import CardError, learner_card  # noqa: E402
from metazoo.evaluation.provenance import check_one_version, machine_label  # noqa: E402

__all__ = [
    "learner_table",
    "results_table",
    "study_section",
    "render_sections",
    "sections",
    "update_file",
    "update_speed_docs",
    "write_speed_tables",
    "main",
]

HEADLINE = ("omniglot-5w1s", "omniglot-20w1s", "miniimagenet-5w1s")
TABLES = REPO / "benchmarks" / "tables"


def _paper_value(card: dict, benchmark: str) -> str:
    return paper_text((card.get("results") or {}).get(benchmark))


def learner_table() -> str:
    """Markdown table of the built-in learners from their cards (paper's numbers, ² = secondary
    source), each linked to its page (the README's: links from the repository root)."""
    header = "| learner | family | paper | needs | tasks | " + " | ".join(HEADLINE) + " |"
    rows = [header, "|" + "---|" * (5 + len(HEADLINE))]
    for name in metazoo.list_learners():
        entry = metazoo.get_learner(name)
        if not entry.is_builtin:
            continue
        try:
            card = learner_card(name)
        except CardError:
            continue
        first_author = card["authors"].split(",")[0].strip().split(" ")[-1]
        paper = f"{first_author} et al., {card['venue']} {card['year']}"
        link = f"[`{name}`](docs/learners/{name}.md)"  # its page on the documentation site
        cells = [link, entry.family, paper, card["model"], ", ".join(card["tasks"])]
        cells += [_paper_value(card, bench) for bench in HEADLINE]
        rows.append("| " + " | ".join(cells) + " |")
    rows.append("")
    rows.append(
        "Numbers are the papers' own (accuracy %): ± is a 95% confidence interval over test tasks,"
    )
    rows.append(
        "(σ …) a standard deviation over training seeds, as the paper published it; ² marks"
    )
    rows.append("a value quoted from a secondary table and not yet checked against the paper.")
    return "\n".join(rows)


def _mean_ci(result: dict) -> str:
    unit = "%" if result.get("metric") == "accuracy" else ""
    return f"{result['mean']:.2f} ± {result['ci95']:.2f}{unit}"


def _reproduction_rows(path: Path, data: dict) -> list[str]:
    check_one_version(record_versions(path.name, data["environment"], data["runs"]))
    rows = []
    machine = machine_label(data["environment"]["machine"])
    for learner, run in data["runs"].items():
        budget = f"{run['train']['steps']} steps, {run['train']['seconds'] / 60:.1f} min"
        if "paper_comparison" in run:  # regression after 1 / 5 / 10 steps
            steps = list(run["paper_comparison"])
            ours = " / ".join(f"{run['paper_comparison'][k]['measured']:.3f}" for k in steps)
            paper = " / ".join(f"{run['paper_comparison'][k]['paper']}" for k in steps)
            what = f"MSE after {' / '.join(steps)} steps"
        else:
            (result,) = run["evaluations"].values()
            ours, paper = _mean_ci(result), paper_text(run.get("paper"))
            what = f"accuracy, {result['protocol']['episodes']} episodes"
        bench = data["reproduction"]
        rows.append(
            f"| {learner} | {bench} | {what} | {budget} | {ours} | {paper} | {machine} | `{path.name}` |"
        )
    return rows


def _learning_rows(path: Path, data: dict) -> list[str]:
    check_one_version(
        {
            f"{path.name}: {run['protocol']['benchmark']}": run["result"]["provenance"]
            for run in data["runs"]
        }
    )
    rows = []
    for run in data["runs"]:
        protocol, result = run["protocol"], run["result"]
        what = f"{result['metric']}, {result['protocol']['episodes']} episodes"
        budget = f"{protocol['steps']} steps × {protocol['meta_batch']} tasks, {run['train_cpu_seconds']:.0f} CPU s"
        prov = result["provenance"]
        machine = machine_label(prov["machine"]) if "machine" in prov else prov["device_name"]
        bound = protocol["threshold"]
        check = (
            f"test: > {bound}%" if result["metric"] == "accuracy" else f"test: < {bound} × mean y²"
        )
        rows.append(
            f"| {protocol['learner']} | {protocol['benchmark']} | {what} | {budget} | {_mean_ci(result)} "
            f"| ({check}) | {machine} | `{path.name}` |"
        )
    return rows


def results_table(folder: Path = RESULTS) -> str:
    """One line per reproduction and learning-test record in ``benchmarks/results``."""
    header = [
        "| learner | benchmark | metric | budget | ours | paper | machine | result file |",
        "|---|---|---|---|---|---|---|---|",
    ]
    rows = []
    for path in sorted(folder.glob("reproduction-*.json")):
        rows += _reproduction_rows(path, json.loads(path.read_text()))
    learning = []
    for path in sorted(folder.glob("learning-*.json")):
        learning += _learning_rows(path, json.loads(path.read_text()))
    text = "\n".join(header + rows)
    if learning:
        text += "\n\nShort learning runs (the budgets of the learning tests, which assert a threshold):\n\n"
        text += "\n".join(header + learning)
    return text


def study_section(folder: Path) -> str:
    """``docs/study-tasks.md``'s results: provenance, the paired contrasts and one sentence each."""
    if not folder.is_dir():
        return f"**Pending**: no results in `{folder.name}`; run the commands above."
    cells = collect(folder).cells
    first = next(iter(cells.values()))
    env = first.environment
    minutes = sum(json.loads(f.read_text()).get("seconds", 0) for f in folder.glob("*.json")) / 60
    rows = contrasts(folder)
    where = folder.relative_to(REPO) if folder.is_relative_to(REPO) else folder
    sha = (env.get("git") or {}).get("sha", "unknown")[:10]
    machine = machine_label(env["machine"]) if env.get("machine") else "machine not recorded"
    return "\n".join(
        [
            f"{len(cells)} cells from `{where}` (git {sha}, {machine}): {minutes:.0f} min of "
            "wall time in all, one training seed each.",
            "",
            to_markdown(rows),
            *findings(rows),
            "",
            f"![test score against training steps per condition](../{where}/tables/study.png)",
        ]
    )


def sections(results_dir: str | Path = RESULTS) -> dict[str, Callable[[], str]]:
    """Every generated section by name (the README's and the ``docs/`` pages'), rendered lazily.

    ``measured`` is the README's (links from the repository root); ``paper`` is a ``docs/``
    page's (links from ``docs/``)."""
    return {
        "learners": learner_table,
        "measured": lambda: measured_table(Path(results_dir) / "paper", root="", pages="docs/"),
        "extras": extras_table,
        "quickstart-time": quickstart_time,
        "protonet-run": lambda: learning_run("protonet"),
        "suites": suites_table,
        "benchmarks": benchmarks_table,
        "presets": lambda: presets_table(Path(results_dir) / "paper"),
        "curves": lambda: curve_figures(Path(results_dir) / "paper", root="../"),
        "results": lambda: results_table(Path(results_dir)),
        "reproductions": reproductions_section.render,
        "paper": lambda: paper_table(Path(results_dir) / "paper", root="../"),
        "study": lambda: study_section(Path(results_dir) / "study-tasks"),
        "speed": readme_speed_table,
        **speed_sections(load_results(results_dir)),
    }


def render_sections(text: str, renderers: dict[str, Callable[[], str]] | None = None) -> str:
    """``text`` with every section it marks re-rendered (``renderers``: :func:`sections`)."""
    for name, render in (sections() if renderers is None else renderers).items():
        pattern = re.compile(rf"(<!-- metazoo:{name} -->\n).*?(<!-- /metazoo:{name} -->)", re.S)
        if not pattern.search(text):
            continue
        body = render().rstrip("\n") + "\n"
        text = pattern.sub(lambda m, body=body: m.group(1) + body + m.group(2), text)
    return text


def update_file(
    path: str | Path,
    check: bool = False,
    renderers: dict[str, Callable[[], str]] | None = None,
) -> bool:
    """Rewrite the generated sections of ``path``; with ``check`` only compare. True when it was
    up to date."""
    path = Path(path)
    old = path.read_text()
    new = render_sections(old, renderers)
    if new != old and not check:
        path.write_text(new)
    return new == old


def update_speed_docs(
    path: str | Path, results_dir: str | Path = RESULTS, check: bool = False
) -> bool:
    """Regenerate the speed sections of ``path`` from the full runs in ``results_dir``; True when
    it was up to date."""
    return update_file(path, check, speed_sections(load_results(results_dir)))


def write_speed_tables(
    results_dir: str | Path = RESULTS, tables_dir: str | Path = TABLES, check: bool = False
) -> list[Path]:
    """Each full speed run's own table (``<tables_dir>/<stem>.md``) from ``results_dir``;
    returns the tables that were stale (with ``check``: left as they were)."""
    stale = []
    for document in load_results(results_dir):
        table = Path(tables_dir, f"{result_stem(document)}.md")
        text = render_markdown(document)
        if table.is_file() and table.read_text() == text:
            continue
        stale.append(table)
        if not check:
            table.parent.mkdir(parents=True, exist_ok=True)
            table.write_text(text)
    return stale


def main(argv: list[str] | None = None) -> int:
    """Regenerate (or ``--check``) the files; 1 when ``--check`` finds one stale."""
    parser = argparse.ArgumentParser(prog="python -m lab.docs.generate", description=__doc__)
    parser.add_argument("files", nargs="*", type=Path, help="default: README.md and docs/**/*.md")
    parser.add_argument("--check", action="store_true", help="change nothing; exit 1 if stale")
    args = parser.parse_args(argv)
    if not args.files:  # the whole pages first: their sections are then current too
        stale_pages = write_pages(check=args.check)
    files = args.files or [REPO / "README.md", *sorted((REPO / "docs").rglob("*.md"))]
    missing = [str(f) for f in files if not f.is_file()]
    if missing:
        parser.error(
            f"no such file: {', '.join(missing)} (paths are relative to the current folder)"
        )
    renderers = sections()
    stale = [f for f in files if not update_file(f, args.check, renderers)]
    if not args.files:
        stale += stale_pages + write_speed_tables(check=args.check)
    for path in stale:
        print(f"{path}: {'stale' if args.check else 'updated'}")
    if args.check and stale:
        print("run `python -m lab.docs.generate` and commit the result")
        return 1
    print(f"{len(files)} files checked: {'all up to date' if not stale else f'{len(stale)} stale'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
