"""``metazoo train L B --help``'s list of settings: every ``key=value`` key of the learner, the
training, the sampler and the backbone, with the value this learner on this benchmark will use
(from :func:`metazoo.runs.resolve_run`) and one line of description."""

from __future__ import annotations

import inspect
import re
from typing import Any

from metazoo.overrides import field_docs
from metazoo.runs.resolve import (
    ResolvedRun,
    backbone_class,
    backbone_name,
    resolve_run,
    setting_targets,
)

__all__ = ["describe_keys", "argument_docs"]


def argument_docs(owner: Any) -> dict[str, str]:
    """Argument -> the first sentence of its line in ``owner``'s Google docstring ``Args:``."""
    docs, current = {}, None
    lines = (inspect.getdoc(owner) or "").partition("Args:")[2].splitlines()
    for line in lines:
        match = re.match(r"^    (\w+): (.*)$", line)
        if match:
            current = match.group(1)
            docs[current] = match.group(2)
        elif current and line.startswith("        "):
            docs[current] += " " + line.strip()
        elif line.strip() and not line.startswith(" "):
            break
    return {k: v.split(". ")[0].rstrip(".") for k, v in docs.items()}


def _type_name(hint: Any) -> str:
    name = getattr(hint, "__name__", None) or str(hint)
    return re.sub(r"collections\.abc\.Callable\[.*\](?= \|)", "Callable", name).replace(
        "typing.", ""
    )


def _group(title, hints, values, docs) -> list[str]:
    lines = [f"{title} keys:"]
    for key, hint in hints.items():
        value, source = values.get(key, ("-", ""))
        shown = f" = {value!r}" + (f" ({source})" if source else "")
        doc = docs.get(key, "")
        lines.append(f"  {key}: {_type_name(hint)}{shown}" + (f"  # {doc}" if doc else ""))
    return lines


def _backbone_values(run: ResolvedRun, backbone: str) -> dict[str, tuple[Any, str]]:
    signature = inspect.signature(backbone_class(backbone).__init__)
    values = {
        k: (p.default, "default")
        for k, p in signature.parameters.items()
        if p.default is not inspect.Parameter.empty
    }
    options, source = run.shown["build"].get("backbone_options", ({}, ""))
    values.update({k: (v, source) for k, v in (options or {}).items()})
    return values


def describe_keys(
    learner: str | None, benchmark: str | None, backbone: str | None, **resolution: Any
) -> str:
    """The ``key=value`` settings ``metazoo train`` takes, grouped, with the values a run of
    ``learner`` on ``benchmark`` will use (``resolution``: :func:`resolve_run`'s other arguments)
    and a line of description each; without a learner and benchmark, the training keys only."""
    from metazoo._registry import get_learner
    from metazoo.data.sampler import SamplerConfig
    from metazoo.training import TrainConfig

    if not (learner and benchmark):
        return "(give LEARNER BENCHMARK before --help to list every key with the value it takes)"
    run = resolve_run(learner, benchmark, backbone=backbone, **resolution)
    chosen = backbone_name(learner, benchmark, run.settings["build"].get("backbone"))
    targets = setting_targets(learner, chosen)
    lines = [f"keys of {learner} on {benchmark} (key=value; value = what this run will use):"]
    groups = [
        (f"learner {learner!r}", "learner", run.shown["config"], field_docs(get_learner(learner).cls.Config)),
        ("training", "train", run.shown["train"], field_docs(TrainConfig)),
        ("sampler (every split)", "sampler", run.shown["sampler"], field_docs(SamplerConfig)),
    ]  # fmt: skip
    if chosen and targets["backbone"]:
        docs = argument_docs(backbone_class(chosen))
        groups.append((f"backbone {chosen!r}", "backbone", _backbone_values(run, chosen), docs))
    for title, target, values, docs in groups:
        lines += _group(title, targets[target], values, docs)
    return "\n".join(lines)
