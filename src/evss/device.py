"""Device and dtype are chosen here and nowhere else; library code follows ``x.device``.

Several processes (``torchrun``): :func:`init_distributed` gives each its device and rank.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from evss.errors import EvssError


def resolve_device(name: str = "auto") -> torch.device:
    """"auto" picks CUDA, then Apple MPS, then the CPU; explicit names are checked."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise EvssError(f"--device {name!r} is not a device name (auto, cpu, cuda, cuda:N, mps)") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise EvssError(f"--device {name}: CUDA is not available on this machine")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise EvssError(f"--device {name}: MPS is not available on this machine")
    return device


def resolve_dtype(device: torch.device, *, half: bool = False) -> torch.dtype:
    """float32, or float16 for ``--half``, which only CUDA runs fast and correctly here."""
    if not half:
        return torch.float32
    if device.type != "cuda":
        raise EvssError(f"--half needs a CUDA device, the device is {device}")
    return torch.float16


@dataclass(frozen=True)
class Runtime:
    """Where this process runs: its device and, under ``torchrun``, its rank among the processes."""

    device: torch.device
    rank: int = 0
    world_size: int = 1
    owns_group: bool = False  # init_distributed started the process group (close() ends it)

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    def close(self) -> None:
        """End the process group if this runtime started it."""
        if self.owns_group and dist.is_initialized():
            dist.destroy_process_group()


def init_distributed(device: str = "auto") -> Runtime:
    """One process per device: with ``WORLD_SIZE > 1`` (set by ``torchrun``) join the process group.

    Alone (no ``WORLD_SIZE``, or 1) this is ``resolve_device(device)``. Under torchrun each process
    takes GPU ``LOCAL_RANK`` when ``device`` is "auto" or "cuda" and CUDA is available (NCCL), the
    CPU otherwise (gloo). A process group that is already initialised is joined, not started again.
    """
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Runtime(device=resolve_device(device))
    rank = int(os.environ.get("RANK", "0"))
    local = int(os.environ.get("LOCAL_RANK", str(rank)))
    use_cuda = torch.cuda.is_available() and device in ("auto", "cuda")
    chosen = torch.device("cuda", local) if use_cuda else torch.device("cpu")
    if use_cuda:
        torch.cuda.set_device(chosen)
    owns = not dist.is_initialized()
    if owns:
        dist.init_process_group(backend="nccl" if use_cuda else "gloo")
    return Runtime(device=chosen, rank=dist.get_rank(), world_size=dist.get_world_size(), owns_group=owns)
