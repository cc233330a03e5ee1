"""From the 1/4 grid to input resolution (Algorithm 1, lines 16-17: upsample, then argmax).

``upsample4`` is the x4 bilinear upsampling (``align_corners=False``, the authors' convention)
cropped to the input size. ``labels_from_quarter`` gives the same labels as
``upsample4(logits).argmax(1)`` without upsampling all C channels: where the four 1/4-grid
neighbours that bilinear interpolation reads all have the same argmax c, the interpolated logits
are a convex combination of vectors whose largest entry is c, so c wins there too; only pixels
whose neighbours disagree (near a label change, typically 5-15 % of them) are interpolated and
argmaxed exactly. Ties aside, the result is identical to the exact path.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def class_argmax(x: torch.Tensor, dim: int = 1) -> torch.Tensor:
    """The argmax over the class dimension, as ``max(dim).indices``: the same ids (the first
    maximum on ties) but 3-4x faster on the CPU than ``torch.argmax`` over a dimension that is not
    the innermost (measured 0.8 vs 3.6 ms for 11 x 130 x 258 logits, 2 threads)."""
    return x.max(dim=dim).indices


def upsample4(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """(N, C, h, w) on the 1/4 grid -> (N, C, H, W): x4 bilinear, cropped to ``size``."""
    up = F.interpolate(x, scale_factor=4, mode="bilinear", align_corners=False)  # (N, C, 4h, 4w)
    return up[:, :, : size[0], : size[1]]


# Bilinear x4 (align_corners=False) reads, for the 4x4 output pixels between four 1/4-grid centres,
# the same four neighbours with the same weights: 1/8, 3/8, 5/8, 7/8 along each axis.
_STEPS = torch.tensor([0.125, 0.375, 0.625, 0.875])


def _block_weights(dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """(16, 4): weights of the corners (top-left, top-right, bottom-left, bottom-right) per output pixel."""
    t = _STEPS.to(device, dtype)
    ty, tx = t[:, None].expand(4, 4).reshape(16), t[None, :].expand(4, 4).reshape(16)
    return torch.stack([(1 - ty) * (1 - tx), (1 - ty) * tx, ty * (1 - tx), ty * tx], dim=1)


def labels_from_quarter(logits: torch.Tensor, size: tuple[int, int], *, exact: bool = False) -> torch.Tensor:
    """Class ids (H, W) uint8 of one frame's 1/4-grid logits (1, C, h, w), C <= 256, at input size ``size``.

    The output is tiled into 4x4 blocks, each between four 1/4-grid centres (the grid edge-padded
    by one, which is how bilinear sampling clamps at the border). A block whose four corners share
    their argmax takes it; the others (near label changes) are interpolated exactly, only there.
    ``exact=True`` upsamples every channel and takes the argmax (the reference path).
    """
    if exact:
        return class_argmax(upsample4(logits, size))[0].to(torch.uint8)  # (H, W)
    q = F.pad(logits[0:1], (1, 1, 1, 1), mode="replicate")[0]  # (C, h+2, w+2)
    c, hp, wp = q.shape
    pred = class_argmax(q, 0).to(torch.uint8)  # (h+2, w+2)
    tl, tr, bl, br = pred[:-1, :-1], pred[:-1, 1:], pred[1:, :-1], pred[1:, 1:]  # (h+1, w+1) block corners
    blocks = tl[:, :, None].expand(hp - 1, wp - 1, 16).clone()  # (h+1, w+1, 16) labels per block pixel
    mixed = ((tl != tr) | (tl != bl) | (tl != br)).nonzero(as_tuple=True)  # the blocks at label changes
    if mixed[0].numel():
        i, j = mixed
        corners = torch.stack([q[:, i, j], q[:, i, j + 1], q[:, i + 1, j], q[:, i + 1, j + 1]], dim=2)  # (C, K, 4)
        values = corners @ _block_weights(q.dtype, q.device).T  # (C, K, 16) interpolated logits
        blocks[i, j] = class_argmax(values, 0).to(torch.uint8)  # (K, 16)
    # Block (i, j) covers output rows 4i-2 .. 4i+1 and columns 4j-2 .. 4j+1.
    full = blocks.view(hp - 1, wp - 1, 4, 4).permute(0, 2, 1, 3).reshape(4 * (hp - 1), 4 * (wp - 1))
    return full[2: 2 + size[0], 2: 2 + size[1]]
