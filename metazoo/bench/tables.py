"""Write every table format of a results folder at once."""

from __future__ import annotations

from pathlib import Path

from metazoo._atomic import write_text_atomic
from metazoo.bench.render import to_bib, to_csv, to_latex, to_markdown
from metazoo.bench.results import ResultSet

__all__ = ["write_tables", "FORMATS", "render"]

#: ``--format`` name -> (file suffix, renderer).
FORMATS = {"md": (".md", to_markdown), "latex": (".tex", to_latex), "csv": (".csv", to_csv)}


def render(results: ResultSet, fmt: str) -> str:
    """The table in format ``md``, ``latex`` or ``csv``."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown table format {fmt!r}; choose one of {', '.join(FORMATS)}")
    return FORMATS[fmt][1](results)


def write_tables(
    results: ResultSet,
    out: str | Path,
    formats: tuple[str, ...] = tuple(FORMATS),
    stem: str = "table",
) -> list[Path]:
    """Write ``<stem>.md``, ``.tex``, ``.csv`` (as asked) and ``references.bib`` into ``out``."""
    out = Path(out)
    paths = [write_text_atomic(render(results, f), out / f"{stem}{FORMATS[f][0]}") for f in formats]
    paths.append(write_text_atomic(to_bib(results), out / "references.bib"))
    return paths
