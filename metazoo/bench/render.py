"""Tables from aggregated results: Markdown, LaTeX (booktabs) and CSV, and the BibTeX they cite.

Rows are methods (by the name papers use, the card's ``display_name``), columns benchmarks, each
headed with its metric and direction; each benchmark has our number (mean ± 95% CI) and the
published number from the learner's card, which cites the paper it is quoted from (not always the
method's own: the fine-tuning baseline's sinusoid number is Finn et al.'s). Best per column in
bold; a dagger marks cells not significantly different from the best. Nothing here is typed by
hand: every number comes from a result file or a card.
"""

from __future__ import annotations

import csv
import io
import json
import math
import re
from typing import Any

from metazoo.bench.results import ALPHA, Aggregate, ResultSet
from metazoo.cards import CardError, display_name, learner_card, list_learner_cards
from metazoo.evaluation.provenance import machine_label

__all__ = [
    "to_markdown",
    "to_latex",
    "to_csv",
    "to_bib",
    "paper_result",
    "bib_key",
    "source_key",
    "metric_header",
    "caption_of",
]

DAGGER, DOUBLE_DAGGER = "†", "‡"


def paper_result(learner: str, benchmark: str) -> dict[str, Any] | None:
    """The published number for ``learner`` on ``benchmark`` from its card, or None."""
    try:
        return (learner_card(learner).get("results") or {}).get(benchmark)
    except (CardError, KeyError):
        return None


def bib_key(learner: str) -> str | None:
    """The BibTeX key of the learner's paper (from its card), or None without a card."""
    try:
        match = re.match(r"\s*@\w+\s*\{\s*([^,\s]+)\s*,", learner_card(learner)["bibtex"])
    except (CardError, KeyError):
        return None
    return match.group(1) if match else None


def _first_author_year(text: str) -> tuple[str, int] | None:
    """``("finn", 2017)`` from ``"Finn et al. 2017, Table 2"`` or ``"Chen and Li 2019"``."""
    match = re.match(r"\s*([^\W\d_][\w-]*)\b.*?\b((?:19|20)\d\d)\b", text)
    return (match.group(1).lower(), int(match.group(2))) if match else None


def source_key(learner: str, benchmark: str) -> str | None:
    """The BibTeX key of the paper the published number is quoted from: the card whose first
    author and year match the result's ``source``; the learner's own paper when none does."""
    found = paper_result(learner, benchmark) or {}
    wanted = _first_author_year(str(found.get("source", "")))
    if wanted is not None:
        for name in list_learner_cards():
            card = learner_card(name)
            surname = card["authors"].split(",")[0].split()[-1].lower()
            if (surname, card["year"]) == wanted:
                return bib_key(name)
    return bib_key(learner)


def metric_header(metric: str) -> str:
    """``accuracy % ↑`` or ``MSE ↓``: the metric and which way is better."""
    return "accuracy % ↑" if metric == "accuracy" else "MSE ↓"


def _metric_of(results: ResultSet, benchmark: str) -> str:
    return next((c.metric for (_, b), c in results.cells.items() if b == benchmark), "accuracy")


def caption_of(results: ResultSet) -> str:
    """``Test accuracy (%) on omniglot-5w1s (5-way 1-shot, 600 episodes) ...``: what a paper's
    caption says, from the result files."""
    parts = []
    for benchmark in results.benchmarks:
        cells = [c for (_, b), c in results.cells.items() if b == benchmark]
        if not cells:
            continue
        p = cells[0].protocol
        shape = (
            f"{p.get('ways')}-way {p.get('shots')}-shot"
            if p.get("ways")
            else f"{p.get('shots')}-shot"
        )
        parts.append(f"{benchmark} ({shape}, {p.get('episodes')} test episodes)")
    metrics = sorted({c.metric for c in results.cells.values()})
    what = " and ".join(
        "accuracy (%, higher is better)" if m == "accuracy" else "MSE (lower is better)"
        for m in metrics
    )
    return (
        f"Test {what} on {', '.join(parts)}: mean ± 95% confidence interval over the test "
        "episodes, next to the published number."
    )


def _number(value: float, metric: str) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    return f"{value:.2f}" if metric == "accuracy" else f"{value:.3f}"


def _ours(cell: Aggregate) -> tuple[str, bool, bool]:
    """``(text, bold, dagger)`` of our number."""
    text = f"{_number(cell.mean, cell.metric)} ± {_number(cell.ci95, cell.metric)}"
    return text, cell.best, bool(cell.tied_with_best)


def _paper(learner: str, benchmark: str) -> tuple[str, bool]:
    """``(text, unverified)`` of the paper's number."""
    found = paper_result(learner, benchmark)
    if not found:
        return "–", False
    text = _number(float(found["value"]), found["metric"])
    if "ci95" in found:
        text += f" ± {_number(float(found['ci95']), found['metric'])}"
    return text, not found.get("verified", False)


def _grid(results: ResultSet) -> list[list[tuple[str, Aggregate | None]]]:
    return [
        [(b, results.cells.get((learner, b))) for b in results.benchmarks]
        for learner in results.learners
    ]


def _backbone(cell: Aggregate) -> str:
    """The backbone a cell was built with: the benchmark card's unless the suite overrode it."""
    from metazoo.cards import benchmark_card

    card = benchmark_card(cell.benchmark)
    options = {**(card.get("backbone_options") or {}), **(cell.build.get("backbone_options") or {})}
    shown = ", ".join(f"{k}={v}" for k, v in sorted(options.items()))
    return (cell.build.get("backbone") or card["backbone"]) + (f" ({shown})" if shown else "")


def _tf32(cell: Aggregate) -> str:
    """``TF32 off``, or which of matmul and cuDNN used TF32 (CUDA only)."""
    if not cell.protocol.get("tf32"):
        return "TF32 off"
    flags = cell.environment.get("precision") or {}
    state = {k: "on" if flags.get(f"tf32_{k}") else "off" for k in ("matmul", "cudnn")}
    return f"TF32 matmul {state['matmul']}, cuDNN {state['cudnn']}"


def _budgets(cells: list[Aggregate]) -> str:
    """``600 steps, meta-batch 25`` when every learner had that budget, else per learner; then
    each learner's training wall time where the records have it."""
    shown = {
        c.learner: f"{c.train.get('steps')} steps, meta-batch {c.train.get('meta_batch')}"
        for c in cells
        if c.train
    }
    if len(set(shown.values())) <= 1:
        text = next(iter(shown.values()), "n/a")
    else:
        text = "; ".join(f"{learner} {budget}" for learner, budget in shown.items())
    timed = [
        f"{c.learner} {c.train_seconds / 60:.1f}" for c in cells if c.train_seconds is not None
    ]
    return text + (f"; training wall time (min): {', '.join(timed)}" if timed else "")


def _protocol_lines(results: ResultSet) -> list[str]:
    lines = []
    for benchmark in results.benchmarks:
        cells = [c for (_, b), c in results.cells.items() if b == benchmark]
        p = cells[0].protocol
        shape = f"{p.get('ways')}-way " if p.get("ways") else ""
        if p.get("episode_shape") == "varied":  # Meta-Dataset's distribution: no one shape
            shape = "varied ways and shots (Meta-Dataset); first episode: "
        if p.get("domain"):
            shape = f"cross-domain {p['domain']}, {shape}"
        steps = ", ".join(
            f"{c.learner} {c.protocol.get('inner_steps')}"
            for c in cells
            if c.protocol.get("inner_steps") is not None
        )
        bn = sorted(
            {str(c.protocol.get("bn_policy")) for c in cells if c.protocol.get("bn_policy")}
        )
        train = _budgets(cells)
        seeds = sorted({s for c in cells for s in c.seeds})
        backbones = sorted({_backbone(c) for c in cells})
        lines.append(
            f"{benchmark}: {p.get('episodes')} test episodes (seed {cells[0].eval_seed}), {shape}"
            f"{p.get('shots')}-shot, {p.get('queries')} queries{' per class' if shape else ''}; "
            f"backbone: {'; '.join(backbones)}; "
            f"test inner steps: {steps or 'n/a'}; BN policy: {', '.join(bn) or 'n/a'}; "
            f"precision: {p.get('dtype')}, {_tf32(cells[0])}; "
            f"training: {train}; training seeds: {', '.join(map(str, seeds))}."
        )
    return lines


def _environments(results: ResultSet) -> str:
    commits: dict[str, list[str]] = {}
    for cell in results.cells.values():
        env = cell.environment
        device = machine_label(env["machine"]) if env.get("machine") else env.get("device_name")
        where = f"{device}, torch {env.get('torch')}, metazoo {env.get('metazoo')}"
        sha = (env.get("git") or {}).get("sha", "")[:10]
        shas = commits.setdefault(where, [])
        if sha and sha not in shas:
            shas.append(sha)
    return "; ".join(
        where + (f" (git {', '.join(sorted(shas))})" if shas else "")
        for where, shas in sorted(commits.items())
    )


def notes(results: ResultSet) -> list[str]:
    """The footnote: what the numbers mean, the protocol per benchmark, and what is missing."""
    lines = [
        "Ours: mean ± 95% CI (1.96·σ/√n) over the test episodes (scores averaged over training "
        "seeds per episode); accuracy in %, MSE for regression. Bold: best in its column. "
        f"{DAGGER}: not significantly different from the best (paired t-test on the same episodes, "
        f"p ≥ {ALPHA}). Paper: the published number from the learner's card "
        f"({DOUBLE_DAGGER}: quoted from a secondary source, not verified in the paper); papers "
        "train far longer than the budgets here.",
        *_protocol_lines(results),
        f"Environment: {_environments(results)}.",
    ]
    if results.code_version and results.code_version.endswith("-dirty"):
        lines.insert(0, f"DRAFT: results of uncommitted changes ({results.code_version}).")
    lines += [f"Deviation from the paper: {text}" for text in results.deviations]
    for record in results.failed:
        lines.append(f"Failed: {record['cell']}: {record.get('error', '?')}")
    for key in results.missing:
        lines.append(f"Missing: {key} (no result file)")
    return lines


def to_markdown(results: ResultSet) -> str:
    """A GitHub-flavoured Markdown table with the notes below it."""
    header = ["Method"]
    for b in results.benchmarks:
        header += [f"{b}, {metric_header(_metric_of(results, b))} (ours)", "paper"]
    rows = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for learner, line in zip(results.learners, _grid(results)):
        row = [display_name(learner)]
        for benchmark, cell in line:
            if cell is None:
                row.append("–")
            else:
                text, bold, dagger = _ours(cell)
                row.append((f"**{text}**" if bold else text) + (DAGGER if dagger else ""))
            paper, unverified = _paper(learner, benchmark)
            source = (paper_result(learner, benchmark) or {}).get("source", "").split(",")[0]
            cited = f" ({source})" if source and paper != "–" else ""
            row.append(paper + (DOUBLE_DAGGER if unverified else "") + cited)
        rows.append("| " + " | ".join(row) + " |")
    return "\n".join(rows) + "\n\n" + "\n".join(f"- {line}" for line in notes(results)) + "\n"


_LATEX_ESCAPES = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#",
                  "_": r"\_", "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\^{}"}  # fmt: skip


def latex_escape(text: str) -> str:
    """Escape LaTeX's special characters and spell the Unicode symbols the notes use."""
    text = "".join(_LATEX_ESCAPES.get(ch, ch) for ch in text)
    for symbol, macro in (("±", r"$\pm$"), ("σ", r"$\sigma$"), ("√n", r"$\sqrt{n}$"), ("≥", r"$\geq$"),
                          ("·", r"$\cdot$"), (DAGGER, r"$^\dagger$"), (DOUBLE_DAGGER, r"$^\ddagger$"),
                          ("–", "--"), ("↑", r"$\uparrow$"), ("↓", r"$\downarrow$")):  # fmt: skip
        text = text.replace(symbol, macro)
    return text


def to_latex(results: ResultSet, caption: str = "") -> str:
    """A ``table`` environment with a booktabs ``tabular``; needs ``\\usepackage{booktabs}``."""
    cols = "l" + "cc" * len(results.benchmarks)
    head = " & ".join(
        rf"\multicolumn{{2}}{{c}}{{{latex_escape(b)} ({latex_escape(metric_header(_metric_of(results, b)))})}}"
        for b in results.benchmarks
    )
    rules = " ".join(
        rf"\cmidrule(lr){{{2 + 2 * i}-{3 + 2 * i}}}" for i in range(len(results.benchmarks))
    )
    lines = [r"\begin{table}[t]", r"\centering", r"\small", rf"\begin{{tabular}}{{{cols}}}", r"\toprule",
             rf"Method & {head} \\", rules, " & ".join(["", *["ours", "paper"] * len(results.benchmarks)]) + r" \\",
             r"\midrule"]  # fmt: skip
    for learner, line in zip(results.learners, _grid(results)):
        row = [latex_escape(display_name(learner))]
        for benchmark, cell in line:
            if cell is None:
                row.append("--")
            else:
                text, bold, dagger = _ours(cell)
                text = latex_escape(text)
                row.append(
                    (rf"\textbf{{{text}}}" if bold else text) + (r"$^\dagger$" if dagger else "")
                )
            paper, unverified = _paper(learner, benchmark)
            key = source_key(learner, benchmark) if paper != "–" else None
            row.append(
                latex_escape(paper)
                + (r"$^\ddagger$" if unverified else "")
                + (rf"~\cite{{{key}}}" if key else "")
            )
        lines.append(" & ".join(row) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}"]
    caption = caption or caption_of(results)
    lines.append(rf"\caption{{{latex_escape(caption)}}}")
    lines += [r"\par\smallskip", r"\parbox{\linewidth}{\footnotesize"]
    lines += [latex_escape(line) + r"\par" for line in notes(results)]
    lines += ["}", r"\end{table}"]
    return "\n".join(lines) + "\n"


CSV_COLUMNS = ("learner", "benchmark", "metric", "mean", "ci95", "episodes", "seeds", "seed_std",
               "best", "tied_with_best", "p_vs_best", "paired", "paper_value", "paper_ci95",
               "paper_source", "paper_verified")  # fmt: skip


def to_csv(results: ResultSet) -> str:
    """One row per (learner, benchmark) with every number, for plotting or further analysis."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for (learner, benchmark), cell in results.cells.items():
        paper = paper_result(learner, benchmark) or {}
        writer.writerow([
            learner, benchmark, cell.metric, repr(cell.mean), repr(cell.ci95), len(cell.scores),
            json.dumps(list(cell.seeds)), "" if math.isnan(cell.seed_std) else repr(cell.seed_std),
            cell.best, "" if cell.tied_with_best is None else cell.tied_with_best,
            "" if cell.p_vs_best is None else repr(cell.p_vs_best), "" if cell.paired is None else cell.paired,
            paper.get("value", ""), paper.get("ci95", ""), paper.get("source", ""), paper.get("verified", ""),
        ])  # fmt: skip
    return buffer.getvalue()


def to_bib(results: ResultSet) -> str:
    """The BibTeX entry of every paper the table cites (each published number's source), once."""
    by_key = {bib_key(n): learner_card(n)["bibtex"].strip() for n in list_learner_cards()}
    entries: dict[str, str] = {}
    for learner in results.learners:
        for benchmark in results.benchmarks:
            key = source_key(learner, benchmark) if paper_result(learner, benchmark) else None
            if key and key in by_key and key not in entries:
                entries[key] = by_key[key]
    return "\n\n".join(entries.values()) + ("\n" if entries else "")
