"""Rewrite result files so that they hold no absolute path of the machine that made them.

    python -m lab.records.strip_result_paths [FILE|FOLDER ...] [--check]

By default every ``*.json`` file git tracks under ``benchmarks/results``. The values that name paths
are rewritten as metazoo records them now (:mod:`metazoo.evaluation.provenance`): ``command`` as
:func:`~metazoo.evaluation.provenance.portable_command`, ``argv`` as ``portable_argv``, a built-in
``suite_path`` by the suite's name, any other absolute path relative to the folder the run was made
in. That folder is read from the file: the checkout whose ``metazoo/`` (or ``registry/suites/``)
it names; a file that names none takes the folder most other files ran in.

Only those strings change, in place in the text: every other byte stays as it was (the numbers,
the ``git`` commit a result belongs to, the formatting). A file is written only when, parsed again,
it equals the original with just those strings replaced and every number is unchanged; otherwise
the script stops and writes nothing more. ``--check`` only reports (exit 1 when a file would change).
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from metazoo.bench.suite import suite_dir
from metazoo.cards import yaml_files
from metazoo.evaluation.provenance import portable_argv, portable_command, portable_path

ROOT = Path(__file__).resolve().parents[2]
RESULTS = "benchmarks/results"
#: where a checkout's path shows in a recorded path: the folder before these is where it ran.
_CHECKOUT_MARKERS = ("/registry/suites/", "/metazoo/")


class NumbersChangedError(RuntimeError):
    """A rewrite would change something besides the path strings: nothing is written."""


def tracked_results(root: Path = ROOT) -> list[Path]:
    """The JSON result files git tracks under ``benchmarks/results``."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--", f"{RESULTS}/*.json"],
        cwd=root, capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    return [root / name for name in listed.split("\0") if name]


def strings(value: Any, key: str = "") -> list[tuple[str, str]]:
    """Every ``(key, string)`` leaf of a parsed JSON value (list items carry their list's key)."""
    if isinstance(value, dict):
        return [leaf for k, v in value.items() for leaf in strings(v, k)]
    if isinstance(value, list):
        return [leaf for v in value for leaf in strings(v, key)]
    return [(key, value)] if isinstance(value, str) else []


def numbers(value: Any, where: str = "") -> list[tuple[str, Any]]:
    """Every number (and bool and null) of a parsed JSON value with where it sits."""
    if isinstance(value, dict):
        return [n for k, v in value.items() for n in numbers(v, f"{where}/{k}")]
    if isinstance(value, list):
        return [n for i, v in enumerate(value) for n in numbers(v, f"{where}[{i}]")]
    return [] if isinstance(value, str) else [(where, repr(value))]  # repr: NaN equals NaN


def ran_in(data: Any) -> str | None:
    """The folder the run was made in: the checkout a recorded path names, if any."""
    for _, text in strings(data):
        for word in text.split():
            for marker in _CHECKOUT_MARKERS:
                if os.path.isabs(word) and marker in word:
                    return word.rsplit(marker, 1)[0] or "/"  # the package, not a folder above
    return None


def _builtin_suites() -> set[str]:
    return {f.name.removesuffix(".yaml") for f in yaml_files(suite_dir())}


def portable(key: str, text: str, cwd: str) -> str:
    """``text`` (the value of ``key``) with no absolute path, as metazoo records it now."""
    package = Path(cwd) / "metazoo"
    if key == "command":
        return portable_command(text.split(" "), cwd, package)
    if key == "suite_path" and os.path.isabs(text):
        path = Path(text)
        builtin = path.parent.as_posix().endswith("registry/suites")
        return path.stem if builtin and path.stem in _builtin_suites() else portable_path(text, cwd)
    if key == "argv":
        return portable_argv([text], cwd)[0]
    return portable_path(text, cwd) if os.path.isabs(text) else text


def replace(value: Any, changes: dict[str, str]) -> Any:
    """``value`` with every string in ``changes`` replaced (what the rewritten text must parse to)."""
    if isinstance(value, dict):
        return {k: replace(v, changes) for k, v in value.items()}
    if isinstance(value, list):
        return [replace(v, changes) for v in value]
    return changes.get(value, value) if isinstance(value, str) else value


def rewrite(text: str, cwd: str) -> tuple[str, dict[str, str]]:
    """``(new text, {old string: new string})`` of one result file's text.

    Raises:
        NumbersChangedError: the new text does not parse to the old data with only those strings
            replaced, or a number differs, or a string is found in two spellings.
    """
    data = json.loads(text)
    changes = {}
    for key, value in strings(data):
        new = portable(key, value, cwd)
        if new != value and changes.setdefault(value, new) != new:
            raise NumbersChangedError(f"{value!r} would be rewritten in two ways")
    for old, new in changes.items():
        quoted = json.dumps(old)
        if quoted not in text:
            raise NumbersChangedError(f"{quoted} is not spelled as json.dumps spells it")
        text = text.replace(quoted, json.dumps(new))
    after = json.loads(text)
    if numbers(after) != numbers(data):
        raise NumbersChangedError("a number changed")
    if json.dumps(after, sort_keys=True) != json.dumps(replace(data, changes), sort_keys=True):
        raise NumbersChangedError("something besides the path strings changed")
    return text, changes


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("files", nargs="*", type=Path, help=f"default: the tracked {RESULTS}")
    parser.add_argument("--check", action="store_true", help="write nothing; exit 1 on changes")
    args = parser.parse_args(argv)
    files = [
        f for given in args.files for f in (sorted(given.rglob("*.json")) if given.is_dir() else [given])
    ] or tracked_results()  # fmt: skip
    texts = {path: path.read_text(encoding="utf-8") for path in files}
    found = {path: ran_in(json.loads(text)) for path, text in texts.items()}
    usual = collections.Counter(c for c in found.values() if c).most_common(1)
    rewritten = {}
    for path, text in texts.items():
        cwd = found[path] or (usual[0][0] if usual else "/")
        new, changes = rewrite(text, cwd)
        if changes:
            rewritten[path] = new
            print(f"{path}: {len(changes)} path string(s), ran in {cwd}; numbers unchanged")
    if not args.check:
        for path, new in rewritten.items():
            path.write_text(new, encoding="utf-8")
    verb = "would rewrite" if args.check else "rewrote"
    print(f"{verb} {len(rewritten)} of {len(files)} result files")
    return 1 if args.check and rewritten else 0


if __name__ == "__main__":
    sys.exit(main())
