"""Frames and labels as tensors: numpy <-> torch layouts and the padding the networks need.

Every place that turns a decoded frame into a network input, or a label map into a loss target,
goes through here: (H, W, 3) uint8 RGB -> (3, H, W) float in [0, 1] (the models normalise
internally); frames are edge-padded bottom/right to a multiple of the network's stride (32 for the
backbones, Sec. III) and predictions cropped back.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from evss.errors import EvssError


def to_tensor(frame: np.ndarray | torch.Tensor, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """(H, W, 3) uint8 RGB or (3, H, W) float in [0, 1] -> (1, 3, H, W) on ``device``."""
    if isinstance(frame, np.ndarray):
        if frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8:
            raise EvssError(f"expected an (H, W, 3) uint8 RGB frame, got {frame.shape} {frame.dtype}")
        # np.require copies only a strided or read-only frame (a decoded or memory-mapped one): torch
        # warns on read-only arrays even though the division below makes a new tensor.
        frame = np.require(frame, requirements=("C", "W"))
        t = torch.from_numpy(frame).permute(2, 0, 1).to(device=device, dtype=dtype) / 255.0  # (3, H, W)
    else:
        if frame.dim() != 3 or frame.shape[0] != 3:
            raise EvssError(f"expected a (3, H, W) float frame in [0, 1], got {tuple(frame.shape)}")
        t = frame.to(device=device, dtype=dtype)
    return t.unsqueeze(0)  # (1, 3, H, W)


def pad_to_multiple(x: torch.Tensor, multiple: int) -> torch.Tensor:
    """Edge-replicate the bottom/right so H and W are multiples of ``multiple``."""
    h, w = x.shape[-2:]
    ph, pw = (-h) % multiple, (-w) % multiple
    if ph == 0 and pw == 0:
        return x
    # replicate padding needs at least one pixel; for a 1-pixel side it repeats that pixel.
    return F.pad(x, (0, pw, 0, ph), mode="replicate")


def image_to_tensor(image: np.ndarray) -> torch.Tensor:
    """uint8 RGB (H, W, 3) -> float32 (3, H, W) in [0, 1] (the models normalise internally)."""
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"expected a uint8 (H, W, 3) RGB image, got {image.dtype} "
                         f"{tuple(image.shape)}")
    t = torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1)))  # (3, H, W) uint8
    return t.to(torch.float32).div_(255.0)


def label_to_tensor(label: np.ndarray) -> torch.Tensor:
    """(H, W) integer label ids -> int64 (H, W), as ``F.cross_entropy`` wants."""
    if label.ndim != 2:
        raise ValueError(f"expected an (H, W) label map, got shape {tuple(label.shape)}")
    return torch.from_numpy(np.ascontiguousarray(label).astype(np.int64))
