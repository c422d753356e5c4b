"""Generated sections of README.md: nothing in them is typed by hand.

A section sits between ``<!-- metazoo:NAME -->`` and ``<!-- /metazoo:NAME -->``; ``metazoo docs``
rewrites every section from the cards and result files, and ``metazoo docs --check`` fails when the
README is stale (CI runs it through the tests).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path

from metazoo._registry import get_learner, list_learners
from metazoo.cards import CardError, learner_card

__all__ = ["learner_table", "render_sections", "update_file", "SECTIONS"]

HEADLINE = ("omniglot-5w1s", "omniglot-20w1s", "miniimagenet-5w1s")
RESULTS = Path(__file__).resolve().parent.parent / "benchmarks" / "results"


def _paper_value(card: dict, benchmark: str) -> str:
    result = (card.get("results") or {}).get(benchmark)
    if not result:
        return "–"
    spread = result.get("ci95", result.get("std"))
    text = f"{result['value']}" + (f" ± {spread}" if spread is not None else "")
    return text if result["verified"] else f"{text} ²"


def learner_table() -> str:
    """Markdown table of the built-in learners from their cards (paper's numbers, ² = secondary source)."""
    header = "| learner | family | paper | needs | tasks | " + " | ".join(HEADLINE) + " |"
    rows = [header, "|" + "---|" * (5 + len(HEADLINE))]
    for name in list_learners():
        entry = get_learner(name)
        if not entry.is_builtin:
            continue
        try:
            card = learner_card(name)
        except CardError:
            continue
        first_author = card["authors"].split(",")[0].strip().split(" ")[-1]
        paper = f"{first_author} et al., {card['venue']} {card['year']}"
        cells = [f"`{name}`", entry.family, paper, card["model"], ", ".join(card["tasks"])]
        cells += [_paper_value(card, bench) for bench in HEADLINE]
        rows.append("| " + " | ".join(cells) + " |")
    rows.append("")
    rows.append(
        "Numbers are the papers' own (accuracy %, ± 95% CI or std as published); ² marks a value"
    )
    rows.append("quoted from a secondary table and not yet checked against the paper.")
    return "\n".join(rows)


def _mean_ci(result: dict) -> str:
    unit = "%" if result.get("metric") == "accuracy" else ""
    return f"{result['mean']:.2f} ± {result['ci95']:.2f}{unit}"


def _paper_text(paper: dict | None) -> str:
    if not paper:
        return "–"
    spread = paper.get("ci95", paper.get("std"))
    text = f"{paper['value']}" + (f" ± {spread}" if spread is not None else "")
    return text if paper.get("verified", True) else f"{text} ²"


def _reproduction_rows(path: Path, data: dict) -> list[str]:
    rows = []
    machine = data.get("machine", data["environment"]["device_name"])
    for learner, run in data["runs"].items():
        budget = f"{run['train']['steps']} steps, {run['train']['seconds'] / 60:.1f} min"
        if "paper_comparison" in run:  # regression after 1 / 5 / 10 steps
            steps = list(run["paper_comparison"])
            ours = " / ".join(f"{run['paper_comparison'][k]['measured']:.3f}" for k in steps)
            paper = " / ".join(f"{run['paper_comparison'][k]['paper']}" for k in steps)
            what = f"MSE after {' / '.join(steps)} steps"
        else:
            (result,) = run["evaluations"].values()
            ours, paper = _mean_ci(result), _paper_text(run.get("paper"))
            what = f"accuracy, {result['protocol']['episodes']} episodes"
        bench = data["reproduction"]
        rows.append(
            f"| {learner} | {bench} | {what} | {budget} | {ours} | {paper} | {machine} | `{path.name}` |"
        )
    return rows


def _learning_rows(path: Path, data: dict) -> list[str]:
    rows = []
    for run in data["runs"]:
        protocol, result = run["protocol"], run["result"]
        what = f"{result['metric']}, {result['protocol']['episodes']} episodes"
        budget = f"{protocol['steps']} steps × {protocol['meta_batch']} tasks, {run['train_cpu_seconds']:.0f} CPU s"
        machine = result["provenance"]["device_name"]
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


def speed_table() -> str:
    """Where each speed target of issue 7 stands, from the committed speed and training results."""
    from metazoo.perf.docs import readme_speed_table  # perf.docs imports this module

    return readme_speed_table()


SECTIONS: dict[str, Callable[[], str]] = {
    "learners": learner_table,
    "results": results_table,
    "speed": speed_table,
}


def render_sections(text: str, sections: dict[str, Callable[[], str]] | None = None) -> str:
    """``text`` with every known generated section re-rendered."""
    for name, render in (sections or SECTIONS).items():
        pattern = re.compile(rf"(<!-- metazoo:{name} -->\n).*?(<!-- /metazoo:{name} -->)", re.S)
        if not pattern.search(text):
            continue
        body = render().rstrip("\n") + "\n"
        text = pattern.sub(lambda m, body=body: m.group(1) + body + m.group(2), text)
    return text


def update_file(path: str | Path, check: bool = False) -> bool:
    """Rewrite the generated sections of ``path``; with ``check`` only report. True when up to date."""
    path = Path(path)
    old = path.read_text()
    new = render_sections(old)
    if new != old and not check:
        path.write_text(new)
    return new == old
