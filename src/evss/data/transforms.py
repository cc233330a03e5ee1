"""Training-pair sampling, joint augmentation and edge targets (paper Sec. III-D/E, IV-A).

Everything here is a pure function: randomness comes in through an explicit
``np.random.Generator``, inputs are never modified in place.

Array layouts (numpy arrays and torch tensors follow their usual conventions):

=========  ===================  ===================
kind       numpy                torch
=========  ===================  ===================
image      (H, W, C)            (C, H, W)
label      (H, W)               (H, W)
flow       (H, W, 2) [dx, dy]   (2, H, W) [dx, dy]
=========  ===================  ===================

Flow follows ``evss.models.warp``: channel 0 is dx (columns), channel 1 is dy (rows), in pixels of
the grid it is stored on, which must be the frames' grid here.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TypeVar

import cv2
import numpy as np
import torch

from evss.classes import IGNORE_INDEX

ArrayT = TypeVar("ArrayT", np.ndarray, torch.Tensor)

# Pair offsets d = i - k between the labelled target I_i and the reference (key) frame I_k.
# Paper Sec. IV-A: "interval = i - k in [-4, 5]" (0 excluded: a pair needs two frames).
PAPER_OFFSET_RANGE = (-4, 5)
# Authors' Cityscapes loader (reference README section 11): the reference frame is 1..5 frames
# before the target or 2..5 frames after it, never 1 frame after.
OFFICIAL_OFFSETS: tuple[int, ...] = (1, 2, 3, 4, 5, -2, -3, -4, -5)
# Authors' CamVid loader (``lib/dataset/camvid.py``) differs: it also uses the frame 1 after.
OFFICIAL_CAMVID_OFFSETS: tuple[int, ...] = (1, 2, 3, 4, 5, -1, -2, -3, -4, -5)


def pair_offsets(*, low: int = PAPER_OFFSET_RANGE[0], high: int = PAPER_OFFSET_RANGE[1],
                 exclude_zero: bool = True, official: bool = False) -> tuple[int, ...]:
    """The candidate offsets ``d = i - k`` for a training pair (I_k, I_i), sorted.

    ``official=True`` returns :data:`OFFICIAL_OFFSETS` ({1..5} U {-5..-2}) and ignores the range.
    """
    if official:
        return tuple(sorted(OFFICIAL_OFFSETS))
    if low > high:
        raise ValueError(f"pair offset range is empty: low={low} > high={high}")
    offsets = tuple(d for d in range(low, high + 1) if not (exclude_zero and d == 0))
    if not offsets:
        raise ValueError(f"pair offset range [{low}, {high}] holds only 0, which exclude_zero removes")
    return offsets


def sample_pair_offset(rng: np.random.Generator, *, low: int = PAPER_OFFSET_RANGE[0],
                       high: int = PAPER_OFFSET_RANGE[1], exclude_zero: bool = True,
                       official: bool = False) -> int:
    """Draw ``d = i - k`` uniformly from :func:`pair_offsets`; the reference frame is ``k = i - d``.

    Default: the paper's ``[-4, 5]`` without 0 (Sec. IV-A). ``official=True``: the authors' set
    {1..5} U {-5..-2} (reference README section 11).
    """
    offsets = pair_offsets(low=low, high=high, exclude_zero=exclude_zero, official=official)
    return int(offsets[int(rng.integers(len(offsets)))])


def choose_offset(rng: np.random.Generator, offsets: Sequence[int], *, target: int,
                  length: int) -> int:
    """Draw an offset ``d`` from ``offsets`` so that the reference ``target - d`` is in the sequence.

    Draws uniformly among the offsets that stay inside ``[0, length)`` (the same distribution as
    redrawing until one fits). When none fits (a very short sequence), the first draw is clamped to
    the nearest frame inside the sequence, which can give ``d = 0`` for a 1-frame sequence.
    """
    if not 0 <= target < length:
        raise ValueError(f"target frame {target} is outside a sequence of {length} frames")
    if not offsets:
        raise ValueError("no pair offsets to choose from")
    valid = [d for d in offsets if 0 <= target - d < length]
    if valid:
        return int(valid[int(rng.integers(len(valid)))])
    d = int(offsets[int(rng.integers(len(offsets)))])
    key = min(max(target - d, 0), length - 1)
    return target - key


# --------------------------------------------------------------------------------------------
# Joint random horizontal flip + random crop
# --------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class FlipCrop:
    """One draw of the joint augmentation: flip first, then pad (bottom/right) and crop."""

    flip: bool
    top: int
    left: int
    height: int  # crop height (the output height)
    width: int   # crop width


def sample_flip_crop(rng: np.random.Generator, *, size: tuple[int, int],
                     crop_size: tuple[int, int] | None, flip_prob: float = 0.5) -> FlipCrop:
    """Draw the flip and the crop window for inputs of ``size`` (H, W).

    Inputs smaller than ``crop_size`` are padded at the bottom/right first, so the window's top-left
    corner is drawn in ``[0, max(H, crop_h) - crop_h]``. ``crop_size=None`` keeps the full frame.
    """
    h, w = size
    if not 0.0 <= flip_prob <= 1.0:
        raise ValueError(f"flip_prob must be in [0, 1], got {flip_prob}")
    flip = bool(rng.random() < flip_prob)
    if crop_size is None:
        return FlipCrop(flip=flip, top=0, left=0, height=h, width=w)
    ch, cw = crop_size
    if ch <= 0 or cw <= 0:
        raise ValueError(f"crop_size must be positive, got {crop_size}")
    top = int(rng.integers(max(h, ch) - ch + 1))
    left = int(rng.integers(max(w, cw) - cw + 1))
    return FlipCrop(flip=flip, top=top, left=left, height=ch, width=cw)


def _spatial_axes(x: np.ndarray | torch.Tensor, kind: str) -> tuple[int, int]:
    """(row axis, column axis) of ``x`` for its kind and container (see the module docstring)."""
    if kind == "label":
        if x.ndim != 2:
            raise ValueError(f"a label must be (H, W), got shape {tuple(x.shape)}")
        return 0, 1
    if x.ndim != 3:
        raise ValueError(f"a {kind} must be 3-D, got shape {tuple(x.shape)}")
    if isinstance(x, torch.Tensor):
        if kind == "flow" and x.shape[0] != 2:
            raise ValueError(f"a flow tensor must be (2, H, W), got {tuple(x.shape)}")
        return 1, 2
    if kind == "flow" and x.shape[2] != 2:
        raise ValueError(f"a flow array must be (H, W, 2), got {tuple(x.shape)}")
    return 0, 1


def apply_flip_crop(x: ArrayT, params: FlipCrop, *, kind: str) -> ArrayT:
    """Apply one :class:`FlipCrop` draw to an image, label or flow field (returns a new array).

    Padding value: 0 for images and flow, :data:`IGNORE_INDEX` (255) for labels. Flipping a flow
    field mirrors it **and negates dx**: content that moved right moves left in the mirrored video.
    """
    if kind not in ("image", "label", "flow"):
        raise ValueError(f"kind must be 'image', 'label' or 'flow', got {kind!r}")
    ya, xa = _spatial_axes(x, kind)
    is_torch = isinstance(x, torch.Tensor)
    if params.flip:
        x = torch.flip(x, dims=(xa,)) if is_torch else np.flip(x, axis=xa)
        if kind == "flow":
            x = x.clone() if is_torch else x.copy()
            if is_torch:
                x[0] = -x[0]  # (2, H, W): dx is channel 0
            else:
                x[..., 0] = -x[..., 0]  # (H, W, 2)
    h, w = x.shape[ya], x.shape[xa]
    pad_h, pad_w = max(params.top + params.height - h, 0), max(params.left + params.width - w, 0)
    if pad_h or pad_w:
        fill = IGNORE_INDEX if kind == "label" else 0
        shape = list(x.shape)
        shape[ya], shape[xa] = h + pad_h, w + pad_w
        if is_torch:
            padded = torch.full(shape, fill, dtype=x.dtype, device=x.device)
        else:
            padded = np.full(shape, fill, dtype=x.dtype)
        index = [slice(None)] * x.ndim
        index[ya], index[xa] = slice(0, h), slice(0, w)
        padded[tuple(index)] = x
        x = padded
    index = [slice(None)] * x.ndim
    index[ya] = slice(params.top, params.top + params.height)
    index[xa] = slice(params.left, params.left + params.width)
    out = x[tuple(index)]
    return out.contiguous() if is_torch else np.ascontiguousarray(out)


def joint_flip_crop(rng: np.random.Generator, *, images: Sequence[ArrayT],
                    labels: Sequence[ArrayT] = (), flow: ArrayT | None = None,
                    crop_size: tuple[int, int] | None = None, flip_prob: float = 0.5,
                    ) -> tuple[list[ArrayT], list[ArrayT], ArrayT | None]:
    """Random horizontal flip + random crop applied identically to all inputs (Sec. IV-A).

    ``images`` (e.g. the key frame and the target frame), ``labels`` (label and edge maps) and the
    optional ``flow`` must share H x W. Returns ``(images, labels, flow)`` as new arrays.
    """
    if not images:
        raise ValueError("joint_flip_crop needs at least one image")
    ya, xa = _spatial_axes(images[0], "image")
    size = (int(images[0].shape[ya]), int(images[0].shape[xa]))
    named = [("image", x) for x in images] + [("label", x) for x in labels]
    if flow is not None:
        named.append(("flow", flow))
    for kind, x in named:
        a, b = _spatial_axes(x, kind)
        if (x.shape[a], x.shape[b]) != size:
            raise ValueError(f"all inputs must be {size[0]}x{size[1]} (H x W), got a {kind} of "
                             f"{x.shape[a]}x{x.shape[b]}")
    params = sample_flip_crop(rng, size=size, crop_size=crop_size, flip_prob=flip_prob)
    out_images = [apply_flip_crop(x, params, kind="image") for x in images]
    out_labels = [apply_flip_crop(x, params, kind="label") for x in labels]
    out_flow = apply_flip_crop(flow, params, kind="flow") if flow is not None else None
    return out_images, out_labels, out_flow


def random_scale(rng: np.random.Generator, image: np.ndarray, label: np.ndarray, *,
                 scale_range: tuple[float, float]) -> tuple[np.ndarray, np.ndarray]:
    """Resize an (H, W, 3) image (bilinear) and its (H, W) label (nearest) by one factor drawn
    log-uniformly from ``scale_range`` (the backbone stage's scale jitter, e.g. 0.5-2x)."""
    low, high = scale_range
    if not 0 < low <= high:
        raise ValueError(f"scale_range must be 0 < low <= high, got {scale_range}")
    s = float(np.exp(rng.uniform(np.log(low), np.log(high))))
    h, w = label.shape
    size = (max(8, round(w * s)), max(8, round(h * s)))  # cv2 wants (W, H)
    return (cv2.resize(image, size, interpolation=cv2.INTER_LINEAR),
            cv2.resize(label, size, interpolation=cv2.INTER_NEAREST))


def color_jitter(rng: np.random.Generator, image: np.ndarray, *, strength: float) -> np.ndarray:
    """Photometric jitter of a uint8 RGB image: brightness, contrast, saturation and a per-channel
    gain, each drawn within +-``strength``, so that a model trained on one city's cameras is not
    tied to their colour rendering."""
    if strength <= 0:
        return image
    x = image.astype(np.float32)
    x = x * rng.uniform(1 - strength, 1 + strength)  # brightness
    mean = x.mean()
    x = (x - mean) * rng.uniform(1 - strength, 1 + strength) + mean  # contrast
    grey = x.mean(axis=2, keepdims=True)
    x = (x - grey) * rng.uniform(1 - strength, 1 + strength) + grey  # saturation
    x = x * rng.uniform(1 - strength / 4, 1 + strength / 4, size=3).astype(np.float32)  # white balance
    return np.clip(x + 0.5, 0, 255).astype(np.uint8)


# --------------------------------------------------------------------------------------------
# Edge & thin-object target M^gt (Sec. III-D/E)
# --------------------------------------------------------------------------------------------

def edge_target(labels: ArrayT, *, thin_classes: Sequence[int], ignore_index: int = IGNORE_INDEX,
                dilation: int = 1, void_value: int = IGNORE_INDEX) -> ArrayT:
    """Ground truth of the edge map M^e from a label map (..., H, W); returns uint8 of that shape.

    A pixel is 1 when

    * its label differs from the pixel above, right, lower-right or lower-left and neither of the
      two is ``ignore_index`` (the authors' four comparisons, reference README section 7), then
      grown by a (2*dilation+1)^2 square; or
    * it belongs to a thin class (``LabelSpace.thin``: pole, pedestrian/person, bicyclist/rider).

    Choices (the official code uses ``dilation=0, void_value=0``):

    * ``dilation=1`` by default: a one-pixel boundary is hard to hit after the x4 upsampling of
      the 1/4-resolution edge logits; the authors' 1x1 dilation kernel is a no-op (``dilation=0``).
    * ``void_value=255`` by default: ignored pixels get 255 so that the edge loss skips them (their
      true boundaries are unknown; Cityscapes' void holds real objects such as guard rails). With
      ``void_value=0`` they are "no edge", as in the official code.
    """
    if labels.ndim < 2:
        raise ValueError(f"labels must be (..., H, W), got shape {tuple(labels.shape)}")
    if dilation < 0:
        raise ValueError(f"dilation must be >= 0, got {dilation}")
    is_torch = isinstance(labels, torch.Tensor)
    lab = labels.long() if is_torch else labels.astype(np.int64)
    valid = lab != ignore_index
    edge = lab != lab  # all False, same container/device
    # (rows of the pixel, cols of the pixel), (rows of the neighbour, cols of the neighbour)
    pairs = (
        ((slice(1, None), slice(None)), (slice(None, -1), slice(None))),          # above
        ((slice(None), slice(None, -1)), (slice(None), slice(1, None))),          # right
        ((slice(None, -1), slice(None, -1)), (slice(1, None), slice(1, None))),   # lower-right
        ((slice(None, -1), slice(1, None)), (slice(1, None), slice(None, -1))),   # lower-left
    )
    for (pr, pc), (nr, nc) in pairs:
        p, n = (Ellipsis, pr, pc), (Ellipsis, nr, nc)
        edge[p] |= (lab[p] != lab[n]) & valid[p] & valid[n]
    if dilation > 0:
        edge = _dilate(edge, dilation)
    if thin_classes:
        thin = torch.tensor(list(thin_classes), device=lab.device) if is_torch else list(thin_classes)
        edge |= torch.isin(lab, thin) if is_torch else np.isin(lab, thin)
    if is_torch:
        out = edge.to(torch.uint8)
        return torch.where(valid, out, torch.full_like(out, void_value))
    out = edge.astype(np.uint8)
    out[~valid] = void_value
    return out


def _dilate(mask: ArrayT, radius: int) -> ArrayT:
    """Binary dilation of (..., H, W) by a (2r+1)^2 square, as shifted ORs (r is tiny)."""
    out = mask.clone() if isinstance(mask, torch.Tensor) else mask.copy()
    h, w = mask.shape[-2], mask.shape[-1]
    for dy in range(-radius, radius + 1):
        for dx in range(-radius, radius + 1):
            if (dy == 0 and dx == 0) or abs(dy) >= h or abs(dx) >= w:
                continue
            dst = (Ellipsis, slice(max(dy, 0), h + min(dy, 0)), slice(max(dx, 0), w + min(dx, 0)))
            src = (Ellipsis, slice(max(-dy, 0), h + min(-dy, 0)), slice(max(-dx, 0), w + min(-dx, 0)))
            out[dst] |= mask[src]
    return out
