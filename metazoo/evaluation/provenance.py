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
from collections.abc import Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

import torch

__all__ = [
    "environment",
    "environment_tag",
    "git_revision",
    "metazoo_checkout",
    "metazoo_version",
    "code_version",
    "machine",
    "machine_label",
    "check_one_version",
    "ProvenanceError",
    "precision_mode",
    "MemoryMeter",
    "portable_path",
    "portable_command",
    "portable_argv",
    "MEASURES",
    "memory_measure",
    "reset_peak_rss",
    "resident_mb",
]


class ProvenanceError(ValueError):
    """Results that cannot stand together in one table: uncommitted or mixed code versions."""


def metazoo_version() -> str:
    """The version of the installed ``metazoo`` distribution (its metadata); the package's
    ``__version__`` when it runs from a source tree that is not installed."""
    try:
        return metadata.version("metazoo")
    except metadata.PackageNotFoundError:
        import metazoo

        return metazoo.__version__


def metazoo_checkout(package: str | Path | None = None) -> Path | None:
    """The top of metazoo's own git checkout when the package folder is its ``metazoo/`` folder
    (a clone, or an editable install of it), else None.

    The git work tree holding ``package`` is found by its ``.git`` (a folder, or a file in a
    worktree); it counts only when its top holds metazoo's own ``pyproject.toml`` and ``package``
    is that top's ``metazoo/``. A wheel installed into a virtual environment inside some other
    repository (or inside metazoo's own) is not a checkout: that repository's commit says nothing
    about the installed code.

    Args:
        package: the package folder; this module's package by default.
    """
    package = Path(package) if package is not None else Path(__file__).resolve().parents[1]
    top = next((f for f in package.parents if (f / ".git").exists()), None)
    if top is None or package != top / "metazoo":
        return None
    return top if _project_name(top / "pyproject.toml") == "metazoo" else None


def _project_name(pyproject: Path) -> str | None:
    """``[project] name`` of a ``pyproject.toml`` (tomllib from Python 3.11; a line match before)."""
    try:
        text = pyproject.read_text(encoding="utf-8")
    except OSError:
        return None
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        table = re.search(r"^\[project\]\s*$(.*?)(^\[|\Z)", text, re.M | re.S)
        name = table and re.search(r"^name\s*=\s*[\"']([^\"']+)", table.group(1), re.M)
        return name.group(1) if name else None
    try:
        return tomllib.loads(text).get("project", {}).get("name")
    except tomllib.TOMLDecodeError:
        return None


def git_revision(path: str | Path | None = None) -> dict[str, Any] | None:
    """``{"sha", "dirty"}`` of the git checkout holding ``path``, or None.

    Args:
        path: a folder in a git work tree; by default metazoo's own checkout
            (:func:`metazoo_checkout`), and None for an installed package.
    """
    where = Path(path) if path is not None else metazoo_checkout()
    if where is None:
        return None
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
    changes to tracked files, or ``metazoo-<version>`` outside metazoo's checkout (an installed
    wheel, see :func:`metazoo_checkout`).

    Args:
        git: a recorded ``{"sha", "dirty"}`` (or None), or ``"here"`` for this process's code.
    """
    if git == "here":
        git = git_revision()
    if not git:
        return f"metazoo-{metazoo_version()}"
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


def portable_path(path: str | Path, cwd: str | Path | None = None) -> str:
    """``path`` as results record it: an absolute path relative to ``cwd`` (the working folder by
    default), so a result file never publishes the layout of the machine that made it."""
    path = os.fspath(path)
    return os.path.relpath(path, cwd or os.getcwd()) if os.path.isabs(path) else path


def portable_command(
    argv: Sequence[str], cwd: str | Path | None = None, package: str | Path | None = None
) -> str:
    """The command line as results record it: metazoo's own command as ``metazoo ...`` (or
    ``python -m metazoo.<module>``), every absolute path, alone or after ``key=``, relative to
    ``cwd``.

    Args:
        argv: ``sys.argv`` of the run.
        cwd: the folder it ran in (the working folder by default).
        package: the ``metazoo`` package folder that ran (this one by default).
    """
    if not argv:
        return ""
    package = Path(package) if package is not None else Path(__file__).resolve().parents[1]
    program, *arguments = argv
    script = Path(program)
    if script.name == "metazoo" and script.suffix == "":
        first = "metazoo"  # the console script
    elif script.is_absolute() and script.is_relative_to(package) and script.suffix == ".py":
        module = script.relative_to(package.parent).with_suffix("").parts
        first = "metazoo" if module == ("metazoo", "__main__") else f"python -m {'.'.join(module)}"
    else:
        first = portable_path(program, cwd)
    return " ".join([first, *portable_argv(arguments, cwd)])


def portable_argv(argv: Sequence[str], cwd: str | Path | None = None) -> list[str]:
    """``argv`` with every absolute path, alone or after ``key=``, relative to ``cwd``."""
    portable = []
    for argument in argv:
        key, sep, value = argument.partition("=")
        relative = f"{key}={portable_path(value, cwd)}" if sep and os.path.isabs(value) else None
        portable.append(relative or portable_path(argument, cwd))
    return portable


def environment(device: torch.device | str | None = None) -> dict[str, Any]:
    """Versions, git commit, device and precision mode of this process."""
    device = torch.device(device) if device is not None else torch.device("cpu")
    return {
        "metazoo": metazoo_version(),
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
        "command": portable_command(sys.argv),
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


#: What :class:`MemoryMeter` measures, recorded beside the figure (``provenance["memory"]``).
MEASURES = {
    "cuda": "CUDA allocator peak during the run (torch.cuda.max_memory_allocated)",
    "cpu": "peak resident set of the process during the run (Linux VmHWM, reset at its start)",
    "cpu-so-far": "peak resident set of the process since it started (ru_maxrss)",
}


def memory_measure(device: torch.device) -> str:
    """What :class:`MemoryMeter` measures on ``device`` here (one of :data:`MEASURES`)."""
    if device.type == "cuda":
        return MEASURES["cuda"]
    return MEASURES["cpu"] if _can_reset_peak_rss() else MEASURES["cpu-so-far"]


class MemoryMeter:
    """Peak memory of a run: on CUDA the allocator's peak, on the CPU the process's peak resident
    set during the run.

    On the CPU the kernel's high-water mark of the resident set (``VmHWM``) is reset to the
    current size when the run starts, so ``peak_mb`` is the most memory the process held while
    the run went on: what a machine needs to run it, as CUDA's ``max_memory_allocated`` is what
    a GPU needs (both include the model). Its growth over ``start_mb`` (the resident set when
    the run began) is not the figure: glibc keeps freed memory, so a run that fits in what an
    earlier one freed grows nothing, and that growth would read 0 for most runs. Where the mark
    cannot be reset (not Linux), ``peak_mb`` is the process's peak so far (``ru_maxrss``), an
    upper bound. ``measure`` says which (:data:`MEASURES`).
    """

    def __init__(self, device: torch.device):
        self.device = device
        self.peak_mb = 0.0
        self.start_mb = 0.0
        self.measure = memory_measure(device)

    def __enter__(self) -> MemoryMeter:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
            self.start_mb = torch.cuda.memory_allocated(self.device) / 2**20
        else:
            reset_peak_rss()
            self.start_mb = resident_mb()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            self.peak_mb = torch.cuda.max_memory_allocated(self.device) / 2**20
        elif self.measure == MEASURES["cpu"]:
            self.peak_mb = resident_mb("VmHWM")
        else:
            rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux, bytes on macOS
            self.peak_mb = rss / 2**20 if sys.platform == "darwin" else rss / 2**10

    def record(self) -> dict[str, Any]:
        """``{"measure", "peak_mb", "start_mb"}`` for a result's provenance."""
        return {"measure": self.measure, "peak_mb": self.peak_mb, "start_mb": self.start_mb}


_CLEAR_REFS = Path("/proc/self/clear_refs")


def _can_reset_peak_rss() -> bool:
    return _CLEAR_REFS.exists() and os.access(_CLEAR_REFS, os.W_OK)


def reset_peak_rss() -> bool:
    """Reset this process's resident-set high-water mark (``VmHWM``) to its current size; False
    where the kernel does not allow it (not Linux)."""
    try:
        _CLEAR_REFS.write_text("5")
    except OSError:
        return False
    return True


def resident_mb(field: str = "VmRSS") -> float:
    """This process's resident set (``VmRSS``) or its high-water mark (``VmHWM``) in MiB, read from
    ``/proc/self/status``; 0.0 where there is none (not Linux)."""
    try:
        status = Path("/proc/self/status").read_text()
    except OSError:
        return 0.0
    match = re.search(rf"^{field}:\s+(\d+) kB", status, re.M)
    return int(match.group(1)) / 1024 if match else 0.0
