"""The process group: set up from torchrun's environment, queried by the trainer and the harness.

``torchrun --nproc-per-node N -m metazoo train ...`` starts N processes and gives each ``RANK``,
``WORLD_SIZE``, ``LOCAL_RANK`` (and ``MASTER_ADDR`` / ``MASTER_PORT`` for the rendezvous).
:func:`init` turns them into a ``torch.distributed`` process group: NCCL when CUDA is available (each
process on GPU ``LOCAL_RANK``), gloo on the CPU. ``srun`` launches without torchrun are accepted
too: ``SLURM_PROCID`` / ``SLURM_NTASKS`` / ``SLURM_LOCALID`` stand in for the torchrun variables.

Every query (:func:`rank`, :func:`world_size`, :func:`is_main`, ...) answers for a single process
when no process group exists, so the trainer calls them unconditionally.
"""

from __future__ import annotations

import atexit
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, TypeVar

import torch
import torch.distributed as torch_dist

__all__ = [
    "DistEnv",
    "env_from",
    "launched",
    "init",
    "shutdown",
    "is_distributed",
    "rank",
    "world_size",
    "is_main",
    "barrier",
    "collective_device",
    "on_main",
    "rank_device",
    "INIT_METHOD_VAR",
    "BACKEND_VAR",
]

#: Environment variable naming the backend (``gloo`` or ``nccl``) to use instead of the default.
BACKEND_VAR = "METAZOO_DIST_BACKEND"
#: Environment variable naming a ``torch.distributed`` init method (e.g. ``file:///shared/rdzv``)
#: used instead of ``env://`` (``MASTER_ADDR`` / ``MASTER_PORT``) when set.
INIT_METHOD_VAR = "METAZOO_INIT_METHOD"

_TORCHRUN = ("RANK", "WORLD_SIZE", "LOCAL_RANK")
_SLURM = ("SLURM_PROCID", "SLURM_NTASKS", "SLURM_LOCALID")

T = TypeVar("T")


@dataclass(frozen=True)
class DistEnv:
    """Where this process sits in the job.

    Attributes:
        rank: global rank, ``0 .. world_size-1``.
        world_size: number of processes.
        local_rank: rank on this machine (the GPU index under NCCL).
    """

    rank: int
    world_size: int
    local_rank: int

    def __post_init__(self) -> None:
        if self.world_size < 1 or not 0 <= self.rank < self.world_size:
            raise ValueError(
                f"inconsistent launch: rank {self.rank} of world size {self.world_size}; start the "
                "processes with torchrun --nproc-per-node N (it sets RANK and WORLD_SIZE)"
            )


def env_from(environ: Mapping[str, str] | None = None) -> DistEnv | None:
    """The launch described by torchrun's (or else Slurm's) variables, None outside a launcher."""
    environ = os.environ if environ is None else environ
    for names in (_TORCHRUN, _SLURM):
        if names[0] in environ and names[1] in environ:
            values = [int(environ.get(name, "0")) for name in names]
            return DistEnv(*values)
    return None


def launched(environ: Mapping[str, str] | None = None) -> bool:
    """True when torchrun (``RANK`` and ``WORLD_SIZE`` set) started this process."""
    environ = os.environ if environ is None else environ
    return all(name in environ for name in _TORCHRUN[:2])


def is_distributed() -> bool:
    """True inside an initialised process group (of any size)."""
    return torch_dist.is_available() and torch_dist.is_initialized()


def rank() -> int:
    """This process's global rank, 0 without a process group."""
    return torch_dist.get_rank() if is_distributed() else 0


def world_size() -> int:
    """Number of processes, 1 without a process group."""
    return torch_dist.get_world_size() if is_distributed() else 1


def is_main() -> bool:
    """True on rank 0 (the only rank that prints, writes checkpoints and result files)."""
    return rank() == 0


def barrier() -> None:
    """Wait for every rank; nothing without a process group."""
    if is_distributed():
        if torch_dist.get_backend() == "nccl":
            torch_dist.barrier(device_ids=[torch.cuda.current_device()])
        else:
            torch_dist.barrier()


def collective_device() -> torch.device:
    """Where tensors handed to collectives must live: the current GPU under NCCL, else the CPU."""
    if is_distributed() and torch_dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def _default_backend(device: str | torch.device | None) -> str:
    if device is not None and torch.device(device).type != "cuda":
        return "gloo"
    return "nccl" if torch.cuda.is_available() and torch_dist.is_nccl_available() else "gloo"


def init(
    backend: str | None = None,
    init_method: str | None = None,
    env: DistEnv | None = None,
    timeout_s: float = 1800.0,
    device: str | torch.device | None = None,
) -> DistEnv:
    """Join the process group described by the launcher's environment variables.

    Idempotent: a second call returns the current group's ranks. Under NCCL the process's CUDA
    device becomes ``cuda:LOCAL_RANK``; train with ``TrainConfig(device=None)`` or that device.

    Args:
        backend: ``nccl`` or ``gloo``; default ``$METAZOO_DIST_BACKEND``, else gloo when ``device``
            is not a GPU, else NCCL when CUDA is available, else gloo.
        init_method: a ``torch.distributed`` init method; default ``$METAZOO_INIT_METHOD``, else
            ``env://`` (the ``MASTER_ADDR`` / ``MASTER_PORT`` torchrun sets).
        env: ranks to use instead of the environment's (tests).
        timeout_s: how long a collective may wait for a slow rank before failing.
        device: the device the ranks will train on (picks the default backend).

    Returns:
        This process's :class:`DistEnv`.

    Raises:
        RuntimeError: outside torchrun / srun, or when torch was built without distributed support.
    """
    if is_distributed():
        return DistEnv(rank(), world_size(), int(os.environ.get("LOCAL_RANK", "0")))
    if not torch_dist.is_available():
        raise RuntimeError(
            "this torch build has no torch.distributed; install a standard torch wheel"
        )
    env = env or env_from()
    if env is None:
        raise RuntimeError(
            "--distributed needs a launcher: run `torchrun --nproc-per-node N -m metazoo train ...` "
            "(or srun with MASTER_ADDR/MASTER_PORT set); RANK and WORLD_SIZE are not set"
        )
    os.environ.setdefault("LOCAL_RANK", str(env.local_rank))  # for rank_device under srun
    backend = backend or os.environ.get(BACKEND_VAR) or _default_backend(device)
    if backend == "nccl":
        torch.cuda.set_device(env.local_rank)
    init_method = init_method or os.environ.get(INIT_METHOD_VAR) or "env://"
    if init_method == "env://":
        # srun sets no RANK / WORLD_SIZE; env:// reads them, so mirror the Slurm values.
        os.environ.setdefault("RANK", str(env.rank))
        os.environ.setdefault("WORLD_SIZE", str(env.world_size))
    torch_dist.init_process_group(
        backend,
        init_method=init_method,
        rank=env.rank,
        world_size=env.world_size,
        timeout=timedelta(seconds=timeout_s),
    )
    atexit.register(_destroy)  # a clean exit without an explicit shutdown()
    return env


def _destroy() -> None:
    if is_distributed():
        torch_dist.destroy_process_group()


def rank_device(device: str | torch.device | None) -> str | torch.device | None:
    """This rank's device: a bare ``cuda`` becomes ``cuda:LOCAL_RANK`` in a process group.

    An explicit index (``cuda:0``) or ``cpu`` is kept as given, as is everything in one process.
    """
    if device is None or not is_distributed() or torch.device(device) != torch.device("cuda"):
        return device
    return f"cuda:{int(os.environ.get('LOCAL_RANK', '0'))}"


def shutdown() -> None:
    """Leave the process group (after a last barrier); nothing without one."""
    if is_distributed():
        barrier()
        torch_dist.destroy_process_group()


def on_main(function: Callable[..., T], *args: Any, **kwargs: Any) -> T | None:
    """Run ``function`` on rank 0 only, then wait for it on every rank.

    For writes every rank depends on (checkpoints): no rank goes on before the file exists, and a
    resumed run reads the same ``last.pt`` on every rank (the checkpoint folder must be on a file
    system all machines share, as on any Slurm cluster).

    Returns:
        ``function``'s result on rank 0, None on the others.
    """
    result = function(*args, **kwargs) if is_main() else None
    barrier()
    return result
