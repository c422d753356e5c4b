"""Where a result came from: versions, git commit, device, precision mode; and peak memory.

Every :class:`~metazoo.evaluation.EvalResult` and every benchmark result file carries this record, so
a number in a table can be traced to the code and the machine that produced it.
"""

from __future__ import annotations

import platform
import re
import resource
import subprocess
import sys
from pathlib import Path
from typing import Any

import torch

__all__ = ["environment", "environment_tag", "git_revision", "precision_mode", "MemoryMeter"]


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
