"""metazoo's public API is three ``__all__``s: ``metazoo``, ``metazoo.engine`` and ``metazoo.testing``.

The lists below are the API: adding or removing a public name means changing them here, on
purpose. Every other module is internal, so what the README, ``docs/`` and ``examples/`` show a
user imports only these names (their Python code blocks and files are parsed, not run).
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

TOP_LEVEL = [
    "Episode", "EpisodeBatch", "EpisodeScorer", "EvalResult", "EvalSettings",
    "EvalSettingsLearner", "FastModel", "FastOptions", "GradientLearner", "MetaLearner",
    "OuterStepLearner", "TaskState",
    "TrainConfig", "__version__", "accuracy", "adapt_weights", "benchmark_card", "build_learner",
    "compare", "create_learner", "episode_loader", "evaluate", "from_tensors", "get_learner",
    "image_folder", "learner_card", "list_benchmarks", "list_learners", "load_learner",
    "make_sampler", "plugin_errors", "predict_folders", "register_learner", "resolve_run", "train",
]  # fmt: skip
ENGINE = [
    "BN_POLICIES", "BatchNormMode", "EXECUTORS", "FastModel", "InnerLoop", "InnerLoopDivergence",
    "LearningRate", "MetaParams", "TaskOutput", "TaskResults", "accumulate_meta_gradient", "adapt",
    "adapt_task", "adapt_weights", "backward_in_chunks", "buffers_of", "meta_objective", "parameters_of",
    "precision_mode", "predict", "reproducible", "run_tasks", "task_objective",
]  # fmt: skip
TESTING = [
    "ContractError", "GradCheckReport", "IMAGE_SHAPE", "QUERIES", "SHOTS", "SyntheticBenchmark",
    "SyntheticSampler", "TASKS", "TinyLearner", "WAYS", "check_learner", "check_meta_gradient",
    "default_model", "meta_gradient", "registered", "synthetic_batch", "tiny_batch",
    "tiny_conv_net", "tiny_learner", "tiny_mlp",
]  # fmt: skip
PUBLIC = {"metazoo": TOP_LEVEL, "metazoo.engine": ENGINE, "metazoo.testing": TESTING}
PUBLIC_MODULES = {"metazoo", "metazoo.engine", "metazoo.testing"}

#: Documented imports of internal modules, each waiting for a decision (exactly these are allowed;
#: the test fails when one is resolved without being removed here, or when another appears).
PENDING = {
    ("docs/speed.md", "metazoo.engine.fast"): "FastMetaStep for one's own loop: into "
    "metazoo.engine (its eager import there would cycle through metazoo.learner)?",
    ("docs/scaling-out.md", "metazoo.distributed"): "init/rank_device/is_main for a torchrun "
    "script: public, or reached through the top level?",
    ("docs/predict.md", "metazoo.data.omniglot"): "the guide lists Omniglot files to build its "
    "example folders; no public call lists a benchmark's class files",
}

FENCE = re.compile(r"^```(?:python|py)[ \t]*\n(.*?)^```", re.S | re.M)


def test_the_public_names_are_exactly_these():
    assert {name: sorted(__import__(name, fromlist=["_"]).__all__) for name in PUBLIC} == PUBLIC


def test_every_public_name_resolves():
    for name, names in PUBLIC.items():
        module = __import__(name, fromlist=["_"])
        missing = [n for n in names if not hasattr(module, n)]
        assert not missing, f"{name}.__all__ names what it does not define: {missing}"


def _user_code() -> list[tuple[str, str]]:
    """(where, code) for every Python block of the README and docs/, every file of examples/."""
    found = []
    for path in [REPO / "README.md", *sorted((REPO / "docs").rglob("*.md"))]:
        for block in FENCE.findall(path.read_text()):
            found.append((path.relative_to(REPO).as_posix(), block))
    for path in sorted((REPO / "examples").rglob("*.py")):
        found.append((path.relative_to(REPO).as_posix(), path.read_text()))
    return found


def _is_metazoo(module: str) -> bool:
    return module == "metazoo" or module.startswith("metazoo.")


def _private_uses(where: str, code: str) -> list[tuple[str, str]]:
    """(module, what) for each use of an internal module or name in ``code``: ``import``,
    ``from ... import`` and ``alias.name`` where the alias is a public module."""
    uses, aliases = [], {}
    tree = ast.parse(code, filename=where)
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in (a for a in node.names if _is_metazoo(a.name)):
                if alias.name not in PUBLIC_MODULES:
                    uses.append((alias.name, f"import {alias.name}"))
                aliases[alias.asname or alias.name.split(".")[0]] = (
                    alias.name if alias.asname else "metazoo"
                )
        elif isinstance(node, ast.ImportFrom) and _is_metazoo(node.module or ""):
            if node.module not in PUBLIC_MODULES:
                uses.append((node.module, f"from {node.module} import ..."))
                continue
            for alias in node.names:
                full = f"{node.module}.{alias.name}"
                if full in PUBLIC_MODULES:
                    aliases[alias.asname or alias.name] = full
                elif alias.name not in PUBLIC[node.module]:
                    uses.append((node.module, f"from {node.module} import {alias.name}"))
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
            module = aliases.get(node.value.id)
            public = PUBLIC.get(module, [])
            if (
                module in PUBLIC
                and node.attr not in public
                and f"{module}.{node.attr}" not in PUBLIC_MODULES
            ):
                uses.append((module, f"{node.value.id}.{node.attr}"))
    return uses


def test_readme_docs_and_examples_use_only_public_names():
    code = _user_code()
    assert len(code) > 30 and any(w.startswith("examples/") for w, _ in code)
    found = {}
    for where, block in code:
        for module, what in _private_uses(where, block):
            found.setdefault((where, module), []).append(what)
    unexpected = {key: whats for key, whats in found.items() if key not in PENDING}
    assert not unexpected, (
        f"internal names shown to users (make them public or avoid them): {unexpected}"
    )
    assert set(found) == set(PENDING), f"resolved, remove from PENDING: {set(PENDING) - set(found)}"


def test_the_check_sees_private_imports_attributes_and_aliases():
    code = (
        "import metazoo, metazoo.distributed as dist\n"
        "from metazoo.engine import run_tasks, task_scores\n"
        "from metazoo import engine as e, train\n"
        "metazoo.evaluate(1); metazoo.cards; e.summarize; e.InnerLoop\n"
    )
    assert sorted(_private_uses("x.py", code)) == [
        ("metazoo", "metazoo.cards"),
        ("metazoo.distributed", "import metazoo.distributed"),
        ("metazoo.engine", "e.summarize"),
        ("metazoo.engine", "from metazoo.engine import task_scores"),
    ]
