"""MkDocs hooks (``mkdocs.yml``: ``hooks:``): the site carries the repository files its pages link to.

A page in ``docs/`` links a result file, table or curve of the repository as GitHub shows it
(``../benchmarks/tables/quickstart/table.md``). MkDocs only knows the files under ``docs/``, so such
a link would be broken on the site (and ``mkdocs build --strict`` fails on it). These hooks copy
exactly the linked repository files into the site under the same path and point the links there;
a link to a repository file that does not exist stays as it is and fails the strict build.
"""

from __future__ import annotations

import posixpath
import re
from pathlib import Path

from mkdocs.structure.files import File, Files

REPO = Path(__file__).resolve().parents[2]
#: A Markdown link or image target: ``](target)`` or ``](target "title")``.
LINK = re.compile(r"\]\(([^)\s]+)((?:\s+\"[^\"]*\")?)\)")
_LINKED: dict[str, str] = {}  # repository path -> its path in the site (filled by on_files)


def _outside_docs(page_uri: str, target: str, docs: str) -> str | None:
    """The repository path ``target`` names from the page ``page_uri``, if it leaves ``docs/``."""
    if "://" in target or target.startswith(("#", "/", "mailto:")):
        return None
    path = target.split("#", 1)[0]
    if not path:
        return None
    resolved = posixpath.normpath(posixpath.join(posixpath.dirname(page_uri), path))
    if not resolved.startswith("../"):
        return None
    repo_path = posixpath.normpath(posixpath.join(docs, resolved))
    return None if repo_path.startswith("../") else repo_path


def on_files(files: Files, config) -> Files:
    """Add every repository file that a page links outside ``docs/`` (found by scanning the pages)."""
    docs_dir = Path(config["docs_dir"])
    docs = docs_dir.resolve().relative_to(REPO).as_posix()
    for page in [f for f in files if f.src_uri.endswith(".md")]:
        text = Path(page.abs_src_path).read_text(encoding="utf-8")
        for match in LINK.finditer(text):
            repo_path = _outside_docs(page.src_uri, match.group(1), docs)
            if repo_path is None or repo_path in _LINKED or not (REPO / repo_path).is_file():
                continue
            site_path = f"repository/{repo_path}"
            files.append(File.generated(config, site_path, abs_src_path=str(REPO / repo_path)))
            _LINKED[repo_path] = site_path
    return files


def on_page_markdown(markdown: str, page, config, files) -> str:
    """Point each link to a repository file at its copy in the site."""
    docs = Path(config["docs_dir"]).resolve().relative_to(REPO).as_posix()

    def relink(match: re.Match) -> str:
        target, title = match.group(1), match.group(2)
        repo_path = _outside_docs(page.file.src_uri, target, docs)
        if repo_path not in _LINKED:
            return match.group(0)
        anchor = target[len(target.split("#", 1)[0]) :]
        here = posixpath.dirname(page.file.src_uri) or "."
        return f"]({posixpath.relpath(_LINKED[repo_path], here)}{anchor}{title})"

    return LINK.sub(relink, markdown)
