"""Benchmark suites: learners × benchmarks × seeds, with per-pair settings, read from YAML.

A suite file (any path, or a built-in: ``registry/suites/<name>.yaml``) looks like::

    # Run with: metazoo bench example --out results/example
    name: example
    seeds: [0, 1, 2]
    train: {steps: 2000, val_every: 500}       # TrainConfig fields, for every cell
    eval: {episodes: 600}                      # evaluation episodes (and seed, default 0)
    runs:                                      # or top-level `learners:` and `benchmarks:`
      - benchmark: omniglot-5w1s
        learners: [maml, protonet]
        train: {meta_batch: 16}                # settings for this benchmark's cells
    overrides:                                 # per learner, or per learner@benchmark
      maml@omniglot-5w1s: {config: {inner_lr: 0.4}}

Each settings block may hold ``config`` (learner config), ``train`` (TrainConfig fields), ``eval``
(``episodes``, ``seed``, ``shots``, ``also_on``: more benchmarks the same trained model is
tested on, e.g. ProtoNet's one 60-way model tested at 5 and 20 ways, and ``check_seed``: a second
set of test episodes the model is also tested on, whose mean the result keeps as ``second_seed``), ``build`` (``backbone``,
``backbone_options``), ``sampler`` (sampler overrides for every split) and ``train_sampler`` (train
split only, e.g. ProtoNet's 60-way training episodes); later, more specific blocks win key by key.
A run may name a ``variant`` (``variant: train-train@200``): its cells are keyed
``<learner>+<variant>``, so one learner can appear under several settings on one benchmark (the
study suites compare them pairwise). A paper preset also names its ``reference`` (the paper's
table) and lists its ``deviations`` from the paper's protocol, which are printed under its tables.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from metazoo.cards import registry_dir, yaml_files
from metazoo.overrides import load_yaml_text
from metazoo.runs.settings import (
    SECTIONS,
    check_block,
    merge_blocks,
)

if TYPE_CHECKING:
    from importlib.resources.abc import Traversable

__all__ = [
    "Cell",
    "Suite",
    "load_suite",
    "suite_dir",
    "paper_presets",
    "parse_shard",
]

_TOP_KEYS = {
    "name",
    "description",
    "seeds",
    "learners",
    "benchmarks",
    "runs",
    "overrides",
    "reference",
    "deviations",
    *SECTIONS,
}


def suite_dir() -> Traversable:
    """The built-in suites: ``suites/`` of the registry shipped in the package (see
    :func:`metazoo.cards.registry_dir`), the checkout's ``registry/suites`` in an editable install."""
    return registry_dir() / "suites"


def paper_presets() -> list[str]:
    """Names of the built-in paper presets (``registry/suites/paper-*.yaml``)."""
    names = (f.name.removesuffix(".yaml") for f in yaml_files(suite_dir()))
    return sorted(name for name in names if name.startswith("paper-"))


@dataclass(frozen=True)
class Cell:
    """One (learner, benchmark, seed) run with its merged settings."""

    learner: str
    benchmark: str
    seed: int
    settings: dict[str, dict[str, Any]] = field(default_factory=dict, compare=False, hash=False)
    #: The run's ``variant`` label ("" when the run names none).
    variant: str = ""

    @property
    def label(self) -> str:
        """The learner, plus ``+variant`` when the run names one (a row of the table)."""
        return f"{self.learner}+{self.variant}" if self.variant else self.learner

    @property
    def key(self) -> str:
        """``maml__omniglot-5w1s__seed0``: the start of the result file's name."""
        return f"{self.label}__{self.benchmark}__seed{self.seed}"

    def filename(self, env_tag: str) -> str:
        """``maml__omniglot-5w1s__seed0__cpu-torch2.14.1.json``."""
        return f"{self.key}__{env_tag}.json"

    def section(self, name: str) -> dict[str, Any]:
        return dict(self.settings.get(name, {}))


@dataclass
class Suite:
    """A parsed suite file."""

    name: str
    path: Path | None
    seeds: list[int]
    runs: list[tuple[str, list[str], dict[str, Any]]]
    defaults: dict[str, Any]
    overrides: dict[str, dict[str, Any]]
    description: str = ""
    #: The paper table the suite reproduces (e.g. ``"Snell et al. 2017, Table 1"``).
    reference: str = ""
    #: Each way the suite's protocol departs from the paper's, printed under its tables.
    deviations: list[str] = field(default_factory=list)

    def cells(self, shard: tuple[int, int] | None = None) -> list[Cell]:
        """Every cell in a fixed order, or shard ``i`` of ``n`` (round-robin over that order)."""
        cells = []
        for benchmark, learners, run_block in self.runs:
            for learner in learners:
                for seed in self.seeds:
                    settings = merge_blocks(
                        self.defaults,
                        run_block,
                        self.overrides.get(learner, {}),
                        self.overrides.get(f"{learner}@{benchmark}", {}),
                    )
                    variant = str(run_block.get("variant", ""))
                    cells.append(Cell(learner, benchmark, seed, settings, variant))
        if shard is None:
            return cells
        index, count = shard
        return [cell for i, cell in enumerate(cells) if i % count == index]


def load_suite(spec: str | Path) -> Suite:
    """A suite from a path, or by name from the built-in suites (``registry/suites/<name>.yaml``)."""
    path: Path | Traversable = Path(spec)
    if not path.is_file():
        path = suite_dir() / f"{spec}.yaml"
        if not path.is_file():
            known = [f.name.removesuffix(".yaml") for f in yaml_files(suite_dir())]
            raise FileNotFoundError(
                f"no suite {str(spec)!r}: not a file, and not one of the built-in suites "
                f"({', '.join(known) or 'none'}); give the path of a suite YAML file"
            )
    data = load_yaml_text(path.read_text(encoding="utf-8"), str(path)) or {}
    # a built-in suite inside a zipped install has no file-system path to record
    return parse_suite(data, path if isinstance(path, Path) else None)


def parse_suite(data: dict[str, Any], path: Path | None = None) -> Suite:
    """Validate a suite mapping (as read from YAML)."""
    where = str(path or "<suite>")
    unknown = sorted(set(data) - _TOP_KEYS)
    if unknown:
        raise ValueError(f"{where}: unknown key(s) {unknown}; allowed: {sorted(_TOP_KEYS)}")
    defaults = check_block({k: data[k] for k in SECTIONS if k in data}, where)
    if "runs" in data:
        runs = []
        for i, run in enumerate(data["runs"]):
            block = check_block(run, f"{where}: runs[{i}]")
            if "benchmark" not in block or not block.get("learners"):
                raise ValueError(f"{where}: runs[{i}] needs `benchmark` and a `learners` list")
            runs.append((block["benchmark"], list(block["learners"]), block))
    elif data.get("learners") and data.get("benchmarks"):
        runs = [(b, list(data["learners"]), {}) for b in data["benchmarks"]]
    else:
        raise ValueError(f"{where}: give `runs:` or both `learners:` and `benchmarks:`")
    overrides = {
        key: check_block(block, f"{where}: overrides.{key}")
        for key, block in (data.get("overrides") or {}).items()
    }
    seeds = [int(s) for s in data.get("seeds", [0])]
    name = data.get("name") or (path.stem if path else "suite")
    deviations = data.get("deviations") or []
    if not isinstance(deviations, list) or not all(isinstance(d, str) for d in deviations):
        raise ValueError(f"{where}: `deviations` must be a list of sentences")
    return Suite(
        name, path, seeds, runs, defaults, overrides, data.get("description", ""),
        str(data.get("reference", "")), deviations,
    )  # fmt: skip


def parse_shard(text: str) -> tuple[int, int]:
    """``"i/n"`` (0-based ``i``) to ``(i, n)``; e.g. ``$SLURM_ARRAY_TASK_ID/$SLURM_ARRAY_TASK_COUNT``."""
    try:
        index, count = (int(part) for part in text.split("/"))
    except ValueError:
        raise ValueError(f"--shard takes i/n with 0 <= i < n (e.g. 0/4), got {text!r}") from None
    if not 0 <= index < count:
        raise ValueError(f"--shard takes i/n with 0 <= i < n (e.g. 0/4), got {text!r}")
    return index, count
