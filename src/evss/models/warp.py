"""Warp(F, O): backward bilinear warping along optical flow, Eq. (1).

The one place that defines the flow convention used everywhere in evss (models, SynthDrive
ground truth, codec motion vectors):

* ``flow`` has shape (N, 2, H, W) on the same grid as the features; channel 0 is dx (columns),
  channel 1 is dy (rows), both in pixels of that grid.
* It is a **backward** flow: the output at integer pixel (x, y) samples the reference at
  (x + dx, y + dy). So for frames, ``warp(frame_prev, flow_cur_to_prev) ~= frame_cur``.
* Pixel centres sit on integer coordinates (``align_corners=True``); samples outside the image
  are clamped to the border (edge replication), exactly like the authors' CUDA ``Resample2d``
  (reference README, section 6).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def coords_grid(n: int, h: int, w: int, *, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """Integer pixel coordinates (N, 2, H, W), channel 0 = x, channel 1 = y."""
    ys, xs = torch.meshgrid(torch.arange(h, device=device, dtype=dtype),
                            torch.arange(w, device=device, dtype=dtype), indexing="ij")
    return torch.stack([xs, ys], dim=0).unsqueeze(0).expand(n, 2, h, w)  # (N, 2, H, W)


def warp(features: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
    """Backward-warp ``features`` (N, C, H, W) with ``flow`` (N, 2, H, W) in grid pixels."""
    if features.dim() != 4 or flow.dim() != 4 or flow.shape[1] != 2:
        raise ValueError(f"warp expects features (N,C,H,W) and flow (N,2,H,W), got "
                         f"{tuple(features.shape)} and {tuple(flow.shape)}")
    n, _, h, w = features.shape
    if flow.shape[0] != n or flow.shape[2:] != features.shape[2:]:
        raise ValueError(f"flow {tuple(flow.shape)} does not match features {tuple(features.shape)}: "
                         "both must share batch size and H x W")
    flow = flow.to(features.dtype)
    pos = coords_grid(n, h, w, device=features.device, dtype=features.dtype) + flow  # (N, 2, H, W)
    # Normalise to [-1, 1] with corner-aligned centres; a 1-pixel axis has no extent, so any
    # sample along it is the border value (scale 0 keeps grid_sample on that single row/column).
    sx = 2.0 / (w - 1) if w > 1 else 0.0
    sy = 2.0 / (h - 1) if h > 1 else 0.0
    gx = pos[:, 0] * sx - 1.0 if w > 1 else torch.zeros_like(pos[:, 0])
    gy = pos[:, 1] * sy - 1.0 if h > 1 else torch.zeros_like(pos[:, 1])
    grid = torch.stack([gx, gy], dim=-1)  # (N, H, W, 2)
    return F.grid_sample(features, grid, mode="bilinear", padding_mode="border", align_corners=True)


def compose_flows(earlier: torch.Tensor | None, step: torch.Tensor) -> torch.Tensor:
    """O_{i->k} from O_{i-1->k} (``earlier``; None when frame i-1 is the keyframe k) and the step
    O_{i->i-1}, all (N, 2, H, W) backward flows of this convention on one grid:
    O_{i->k}(x) = O_{i->i-1}(x) + O_{i-1->k}(x + O_{i->i-1}(x)), the earlier flow sampled by warping."""
    return step if earlier is None else step + warp(earlier, step)  # (N, 2, H, W)
