"""Device and dtype are chosen here and nowhere else; library code follows ``x.device``."""

from __future__ import annotations

import torch

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
