"""Read a folder of result files and aggregate them into table cells with significance marks.

Several training seeds of one (learner, benchmark) are averaged episode by episode (every cell of a
suite is evaluated on the same episodes), and the table reports the mean ± 95% CI over episodes of
those seed-averaged scores; the spread between seeds is kept as ``seed_std``. A cell is marked
"not significantly different from the best" by a paired t-test against the column's best.

A table stands on one commit and one set of episodes per column: :func:`collect` refuses results
from uncommitted changes or from several code versions, and a column whose cells were evaluated on
different episodes (another class split, other queries, other data), naming what differs.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from metazoo.evaluation import EvalResult, compare
from metazoo.evaluation.episodes import episode_mismatch
from metazoo.evaluation.provenance import check_one_version
from metazoo.evaluation.stats import mean_ci95, sample_std

__all__ = ["Aggregate", "ResultSet", "load_results", "collect", "run_label", "as_result"]

#: Significance level of the "not different from the best" marks.
ALPHA = 0.05


@dataclass
class Aggregate:
    """One table cell: a learner on a benchmark, over its training seeds."""

    learner: str
    benchmark: str
    metric: str
    scores: list[float]
    episode_ids: list[int]
    eval_seed: int
    seeds: list[int]
    seed_means: list[float]
    protocol: dict[str, Any]
    train: dict[str, Any]
    environment: dict[str, Any]
    build: dict[str, Any] = field(default_factory=dict)
    #: Training wall time in seconds, the mean over seeds (resumed calls included); None when the
    #: records do not say (results of an older metazoo, or evaluations without training).
    train_seconds: float | None = None
    mean: float = 0.0
    ci95: float = 0.0
    best: bool = False
    #: None for the best cell; else whether it is not significantly different from the best.
    tied_with_best: bool | None = None
    p_vs_best: float | None = None
    paired: bool | None = None

    def __post_init__(self) -> None:
        self.mean, self.ci95, _ = mean_ci95(self.scores)

    @property
    def seed_std(self) -> float:
        return sample_std(self.seed_means)

    @property
    def higher_is_better(self) -> bool:
        return self.metric != "mse"


@dataclass
class ResultSet:
    """Every cell found in a results folder, plus the cells that failed or are missing."""

    cells: dict[tuple[str, str], Aggregate] = field(default_factory=dict)
    failed: list[dict[str, Any]] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    suite: str | None = None
    #: The one code version behind every cell (see :func:`~metazoo.evaluation.code_version`).
    code_version: str | None = None
    #: How the suite's protocol departs from the papers it reproduces (printed under the table).
    deviations: list[str] = field(default_factory=list)

    @property
    def learners(self) -> list[str]:
        return list(dict.fromkeys(k[0] for k in self.cells))

    @property
    def benchmarks(self) -> list[str]:
        return list(dict.fromkeys(k[1] for k in self.cells))


def load_results(folder: str | Path) -> list[dict[str, Any]]:
    """Every result record (``*.json`` with a ``schema`` key) directly in ``folder``, sorted by
    name: a suite's results, a ``metazoo train`` run folder (its ``result.json``), or one record
    file (a suite cell)."""
    folder = Path(folder)
    if folder.is_file():
        data = json.loads(folder.read_text())
        return (
            [{**data, "file": folder.name}] if isinstance(data, dict) and "schema" in data else []
        )
    if not folder.is_dir():
        raise FileNotFoundError(
            f"no results folder {folder}; run `metazoo bench SUITE --out {folder}`"
        )
    records = []
    for path in sorted(folder.glob("*.json")):
        data = json.loads(path.read_text())
        if isinstance(data, dict) and "schema" in data:
            records.append({**data, "file": path.name})
    return records


def run_label(record: dict[str, Any]) -> str:
    """The learner, plus ``+variant`` for a cell of a run that names a variant (study suites)."""
    variant = record.get("variant") or ""
    return f"{record['learner']}+{variant}" if variant else record["learner"]


def _latest_per_run(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    latest: dict[tuple, dict[str, Any]] = {}
    for record in records:
        key = (run_label(record), record["benchmark"], record["seed"])
        if key not in latest or record.get("finished", "") >= latest[key].get("finished", ""):
            latest[key] = record
    return list(latest.values())


def _with_also_on(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Records plus one per extra benchmark a cell's model was also tested on (``eval.also_on``);
    a cell trained for that benchmark itself wins over such a record."""
    own = {(r["learner"], r["benchmark"], r["seed"]) for r in records}
    extra = []
    for record in records:
        for benchmark, result in (record.get("also_on") or {}).items():
            if (record["learner"], benchmark, record["seed"]) not in own:
                cell = f"{record['learner']}__{benchmark}__seed{record['seed']}"
                extra.append(
                    {**record, "benchmark": benchmark, "cell": cell, "result": result,
                     "by_shots": {}, "also_on": {}, "trained_as": record["cell"]}
                )  # fmt: skip
    return records + extra


def _aggregate(runs: list[dict[str, Any]]) -> Aggregate:
    results = [EvalResult.from_dict(r["result"]) for r in sorted(runs, key=lambda r: r["seed"])]
    first = results[0]
    for other in results[1:]:
        why = _not_paired(first, other)
        if why:
            raise ValueError(
                f"{first.learner} on {first.benchmark}: the seeds were evaluated on different "
                f"episodes ({why}); keep eval.seed, eval.episodes and the sampler options fixed "
                "across a suite"
            )
    per_episode = [sum(col) / len(col) for col in zip(*(r.scores for r in results))]
    return Aggregate(
        learner=run_label(runs[0]),
        benchmark=runs[0]["benchmark"],
        metric=first.metric,
        scores=per_episode,
        episode_ids=first.episode_ids,
        eval_seed=first.seed,
        seeds=[r["seed"] for r in sorted(runs, key=lambda r: r["seed"])],
        seed_means=[r.mean for r in results],
        protocol=first.protocol,
        train=runs[0].get("train", {}).get("config", {}),
        environment=runs[0].get("environment", {}),
        build=(runs[0].get("settings") or {}).get("build") or {},
        train_seconds=_train_seconds(runs),
    )


def training_seconds(record_train: dict[str, Any]) -> float | None:
    """A record's whole training time: ``total_seconds`` (resumed calls included), or the
    ``seconds`` of older records that kept only the last call's; None when neither is there."""
    return record_train.get("total_seconds", record_train.get("seconds"))


def _train_seconds(runs: list[dict[str, Any]]) -> float | None:
    times = [training_seconds(r.get("train", {})) for r in runs]
    return None if None in times else sum(times) / len(times)


def _not_paired(a: EvalResult, b: EvalResult) -> str | None:
    if (a.seed, a.episode_ids) != (b.seed, b.episode_ids):
        return f"seed {a.seed} vs {b.seed}, {len(a.episode_ids)} vs {len(b.episode_ids)} episodes"
    return episode_mismatch(a.protocol, b.protocol)


def as_result(cell: Aggregate) -> EvalResult:
    return EvalResult(
        cell.learner, cell.benchmark, "test", cell.eval_seed, cell.metric, cell.scores,
        cell.episode_ids, cell.mean, cell.ci95, 0.0, 0.0, 0.0, 0.0, cell.protocol,
    )  # fmt: skip


def _mark_column(cells: list[Aggregate]) -> None:
    for cell in cells[1:]:
        why = _not_paired(as_result(cells[0]), as_result(cell))
        if why:
            raise ValueError(
                f"{cell.benchmark}: {cells[0].learner} and {cell.learner} were evaluated on "
                f"different episodes ({why}), so one column cannot compare them; evaluate every "
                "learner of a benchmark with the same eval and sampler settings"
            )
    pick = max if cells[0].higher_is_better else min
    best = pick(cells, key=lambda c: c.mean)
    best.best = True
    for cell in cells:
        if cell is best:
            continue
        cell.paired = True
        cell.p_vs_best = compare(as_result(cell), as_result(best)).p_value
        cell.tied_with_best = not (cell.p_vs_best < ALPHA)  # NaN (one episode) counts as tied


def collect(
    folder: str | Path, expected: list[str] | None = None, allow_dirty: bool = False
) -> ResultSet:
    """Aggregate the results in ``folder``.

    Args:
        folder: a results folder written by ``metazoo bench``.
        expected: cell keys (``learner__benchmark__seedS``) the suite asks for; those with no
            result file are listed as missing.
        allow_dirty: accept results of uncommitted changes (a draft table, which says so).

    Raises:
        ProvenanceError: results from uncommitted changes (unless ``allow_dirty``) or from more
            than one code version.
        ValueError: cells of one benchmark evaluated on different episodes.
    """
    records = load_results(folder)
    done = _with_also_on(_latest_per_run([r for r in records if r.get("status") == "ok"]))
    version = check_one_version({r["file"]: r.get("environment") for r in done}, allow_dirty)
    done_keys = {r["cell"] for r in done}
    failed = [r for r in _latest_per_run([r for r in records if r.get("status") != "ok"])]
    failed = [r for r in failed if r["cell"] not in done_keys]
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for record in done:
        groups.setdefault((run_label(record), record["benchmark"]), []).append(record)
    suite = records[0].get("suite") if records else None
    result = ResultSet(suite=suite, failed=failed, code_version=version)
    result.cells = {key: _aggregate(runs) for key, runs in groups.items()}
    if expected:  # the suite's order: learners and benchmarks as the suite lists them
        rank = {tuple(k.split("__")[:2]): i for i, k in reversed(list(enumerate(expected)))}
        result.cells = dict(sorted(result.cells.items(), key=lambda kv: rank.get(kv[0], len(rank))))
    seen = done_keys | {r["cell"] for r in failed}
    result.missing = [key for key in expected or [] if key not in seen]
    for benchmark in result.benchmarks:
        _mark_column([c for (_, b), c in result.cells.items() if b == benchmark])
    return result
