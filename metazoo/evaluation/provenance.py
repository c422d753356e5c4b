"""Where a result came from: versions, git commit, the measured machine, precision; peak memory.

Every :class:`~metazoo.evaluation.EvalResult` and every benchmark result file carries this record, so
a number in a table can be traced to the code and the machine that produced it. The machine is
measured (CPU model, cores, threads; GPU name and memory), never typed. :func:`code_version` names
the code: a table built from results of several versions, or of uncommitted changes, is refused by
:func:`check_one_version`.
"""

from __future__ import annotations

import os
import platform
import re
import resource
import subprocess
import sys
from pathlib import Path
from typing import Any

import torch

__all__ = [
    "environment",
    "environment_tag",
    "git_revision",
    "code_version",
    "machine",
    "machine_label",
    "check_one_version",
    "ProvenanceError",
    "precision_mode",
    "MemoryMeter",
]


class ProvenanceError(ValueError):
    """Results that cannot stand together in one table: uncommitted or mixed code versions."""


def git_revision(path: str | Path | None = None) -> dict[str, Any] | None:
    """``{"sha", "dirty"}`` of the git checkout holding ``path`` (the package by default), or None."""
    where = Path(path) if path is not None else Path(__file__).resolve().parent
    try:
        sha = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=where, capture_output=True, text=True, timeout=10
        )
        if sha.returncode != 0:
            return None
        status = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=where,
            capture_output=True,
            text=True,
            timeout=10,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return {"sha": sha.stdout.strip(), "dirty": bool(status.stdout.strip())}


def code_version(git: dict[str, Any] | None | str = "here") -> str:
    """The version of the code: ``<sha>`` of a clean checkout, ``<sha>-dirty`` with uncommitted
    changes to tracked files, or ``metazoo-<version>`` outside a git checkout (an installed wheel).

    Args:
        git: a recorded ``{"sha", "dirty"}`` (or None), or ``"here"`` for this process's code.
    """
    if git == "here":
        git = git_revision()
    if not git:
        import metazoo

        return f"metazoo-{metazoo.__version__}"
    return f"{git['sha']}-dirty" if git.get("dirty") else str(git["sha"])


def check_one_version(records: dict[str, dict[str, Any] | None], allow_dirty: bool = False) -> str:
    """The one code version behind ``records``; raises :class:`ProvenanceError` otherwise.

    Args:
        records: each result's name (a file name) mapped to its recorded ``environment``.
        allow_dirty: accept uncommitted changes (for a draft; the caller must say so).

    Returns:
        The shared :func:`code_version`.
    """
    versions: dict[str, list[str]] = {}
    for name, env in records.items():
        versions.setdefault(code_version((env or {}).get("git")), []).append(name)
    dirty = {v: names for v, names in versions.items() if v.endswith("-dirty")}
    if dirty and not allow_dirty:
        version, names = next(iter(dirty.items()))
        raise ProvenanceError(
            f"{', '.join(names[:3])}{' ...' if len(names) > 3 else ''} came from uncommitted "
            f"changes ({version}): commit the code, then run again from the clean tree so each "
            "number belongs to one commit (or build a draft table with --allow-dirty)"
        )
    bases = {v.removesuffix("-dirty") for v in versions} if allow_dirty else set(versions)
    if len(bases) > 1:  # a draft may mix the commit with its uncommitted changes, not two commits
        shown = "; ".join(f"{v[:12]}: {', '.join(n[:2])}" for v, n in versions.items())
        raise ProvenanceError(
            f"these results come from {len(bases)} code versions ({shown}): a table holds "
            "results of one commit; re-run the older cells at the current commit"
        )
    return max(versions, key=len, default=code_version())  # the -dirty one of a draft


def machine(device: torch.device | str | None = None) -> dict[str, Any]:
    """The measured machine: CPU model, logical cores, cores usable here, torch threads, and the
    GPU's name, memory (GiB) and count when ``device`` is CUDA."""
    device = torch.device(device) if device is not None else torch.device("cpu")
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    info: dict[str, Any] = {
        "cpu": _cpu_model(),
        "logical_cores": os.cpu_count(),
        "usable_cores": usable,
        "torch_threads": torch.get_num_threads(),
        "memory_gib": _memory_gib(),
    }
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        info.update(
            gpu=props.name,
            gpu_memory_gib=round(props.total_memory / 2**30, 1),
            gpus=torch.cuda.device_count(),
        )
    return info


def machine_label(info: dict[str, Any]) -> str:
    """One line for a table: ``NVIDIA H100 80GB HBM3`` or ``Intel Xeon ... (2 cores, 2 threads)``."""
    if info.get("gpu"):
        return f"{info['gpu']} ({info.get('gpu_memory_gib')} GiB)"
    cores, threads = info.get("usable_cores"), info.get("torch_threads")
    return f"{info.get('cpu') or 'CPU'} ({cores} cores, {threads} thread{'s' * (threads != 1)})"


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return " ".join(line.split(":", 1)[1].split())
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _memory_gib() -> float | None:
    try:
        pages, size = os.sysconf("SC_PHYS_PAGES"), os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None
    return round(pages * size / 2**30, 1)


def precision_mode() -> dict[str, Any]:
    """The float settings that move results: TF32 flags, matmul precision, determinism."""
    return {
        "tf32_matmul": bool(torch.backends.cuda.matmul.allow_tf32),
        "tf32_cudnn": bool(torch.backends.cudnn.allow_tf32),
        "float32_matmul_precision": torch.get_float32_matmul_precision(),
        "deterministic_algorithms": torch.are_deterministic_algorithms_enabled(),
        "cudnn_benchmark": bool(torch.backends.cudnn.benchmark),
    }


def device_name(device: torch.device) -> str:
    """A human-readable name of ``device`` (the GPU model, or the CPU architecture)."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    threads = torch.get_num_threads()
    return f"cpu ({platform.machine()}, {threads} thread{'' if threads == 1 else 's'})"


def environment(device: torch.device | str | None = None) -> dict[str, Any]:
    """Versions, git commit, device and precision mode of this process."""
    import metazoo

    device = torch.device(device) if device is not None else torch.device("cpu")
    return {
        "metazoo": metazoo.__version__,
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "cudnn": torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "git": git_revision(),
        "device": str(device),
        "device_name": device_name(device),
        "machine": machine(device),
        "precision": precision_mode(),
        "command": " ".join(sys.argv),
    }


def environment_tag(device: torch.device | str | None = None) -> str:
    """A short file-name-safe environment label, e.g. ``cpu-torch2.14.1`` or ``h100-torch2.11.0``."""
    device = torch.device(device) if device is not None else torch.device("cpu")
    if device.type == "cuda":
        words = torch.cuda.get_device_name(device).lower().replace("nvidia", "").split()
        model = next((w for w in words if any(ch.isdigit() for ch in w)), words[0] if words else "")
        label = f"cuda{'-' + model if model else ''}"
    else:
        label = device.type
    version = torch.__version__.split("+")[0]
    return re.sub(r"[^A-Za-z0-9.-]+", "-", f"{label}-torch{version}")


class MemoryMeter:
    """Peak memory of a block: CUDA max-allocated bytes, or growth of the process's peak RSS on CPU.

    On CPU the figure is how far the process's high-water mark rose during the block (``ru_maxrss``),
    so it is 0 when the block stayed below an earlier peak: a lower bound, documented as such.
    """

    def __init__(self, device: torch.device):
        self.device = device
        self.peak_mb = 0.0
        self._start = 0.0

    def __enter__(self) -> MemoryMeter:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
        else:
            self._start = _max_rss_mb()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            self.peak_mb = torch.cuda.max_memory_allocated(self.device) / 2**20
        else:
            self.peak_mb = max(0.0, _max_rss_mb() - self._start)


def _max_rss_mb() -> float:
    """Peak resident set size of this process in MiB (Linux reports KiB, macOS bytes)."""
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / 2**20 if sys.platform == "darwin" else rss / 2**10
