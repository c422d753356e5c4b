"""Generated sections of README.md: nothing in them is typed by hand.

A section sits between ``<!-- metazoo:NAME -->`` and ``<!-- /metazoo:NAME -->``; ``metazoo docs``
rewrites every section from the cards and result files, and ``metazoo docs --check`` fails when the
README is stale (CI runs it through the tests).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

from metazoo._registry import get_learner, list_learners
from metazoo.cards import CardError, learner_card

__all__ = ["learner_table", "render_sections", "update_file", "SECTIONS"]

HEADLINE = ("omniglot-5w1s", "omniglot-20w1s", "miniimagenet-5w1s")


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


SECTIONS: dict[str, Callable[[], str]] = {"learners": learner_table}


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
