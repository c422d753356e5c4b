"""``lab/docs/mkdocs_hooks.py``: a page's link to a repository file outside ``docs/`` points at the
copy the site carries; other links are left alone."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

pytest.importorskip("mkdocs")
from lab.docs import mkdocs_hooks  # noqa: E402

pytestmark = pytest.mark.lab


def test_a_link_leaving_docs_names_its_repository_path():
    outside = mkdocs_hooks._outside_docs
    assert outside("speed.md", "../benchmarks/tables/a.md#x", "docs") == "benchmarks/tables/a.md"
    assert outside("learners/maml.md", "../../benchmarks/r.png", "docs") == "benchmarks/r.png"
    assert outside("speed.md", "data.md", "docs") is None
    assert outside("learners/maml.md", "../data.md", "docs") is None
    assert outside("speed.md", "https://example.org/x", "docs") is None
    assert outside("speed.md", "../../outside-the-repository.md", "docs") is None


def test_links_to_carried_files_are_rewritten_from_the_page(monkeypatch):
    monkeypatch.setattr(
        mkdocs_hooks, "_LINKED", {"benchmarks/r.png": "repository/benchmarks/r.png"}
    )
    page = SimpleNamespace(file=SimpleNamespace(src_uri="learners/maml.md"))
    config = {"docs_dir": str(mkdocs_hooks.REPO / "docs")}
    text = (
        '[curve](../../benchmarks/r.png "t") [other](../../benchmarks/missing.png) [p](../data.md)'
    )
    assert mkdocs_hooks.on_page_markdown(text, page, config, None) == (
        '[curve](../repository/benchmarks/r.png "t") [other](../../benchmarks/missing.png) '
        "[p](../data.md)"
    )
