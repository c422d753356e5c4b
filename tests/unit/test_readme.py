"""The README's generated sections are current, and the Quickstart holds exactly two commands."""

from __future__ import annotations

import re
from pathlib import Path

from metazoo.readme import render_sections

README = Path(__file__).resolve().parents[2] / "README.md"


def test_generated_sections_are_current():
    text = README.read_text()
    assert "<!-- metazoo:learners -->" in text
    assert render_sections(text) == text, "README is stale: run `metazoo docs` and commit README.md"


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
