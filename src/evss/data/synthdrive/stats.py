"""Checks and statistics of a clip: the warp check of its flow and the per-frame fractions that
:func:`evss.data.synthdrive.storage.write_dataset` records in the manifest."""

from __future__ import annotations

import cv2
import numpy as np

from evss.classes import CAMVID, IGNORE_INDEX
from evss.data.synthdrive.clip import Clip


def warp_check(prev_frame: np.ndarray, frame: np.ndarray, prev_label: np.ndarray, label: np.ndarray,
               flow_bwd: np.ndarray, occlusion: np.ndarray) -> tuple[float, float]:
    """(mean absolute RGB error in 8-bit levels, label agreement) of frame t against frame t-1
    warped by ``flow_bwd`` (bilinear for colour, nearest for labels), on non-occluded pixels.
    The sampling of :func:`evss.models.warp.warp` (pixel centres on integers, border clamp), done
    with OpenCV for speed."""
    h, w = label.shape
    mx = np.arange(w, dtype=np.float32)[None, :] + flow_bwd[0]
    my = np.arange(h, dtype=np.float32)[:, None] + flow_bwd[1]
    vis = ~occlusion
    if not vis.any():
        return 0.0, 1.0
    warped = cv2.remap(prev_frame.astype(np.float32), mx, my, cv2.INTER_LINEAR,
                       borderMode=cv2.BORDER_REPLICATE)  # (H, W, 3)
    err = float(np.abs(warped - frame.astype(np.float32))[vis].mean())
    ni = np.clip(np.rint(my), 0, h - 1).astype(np.int64)
    nj = np.clip(np.rint(mx), 0, w - 1).astype(np.int64)
    agree = float((prev_label[ni, nj] == label)[vis].mean())
    return err, agree


def clip_stats(clip: Clip) -> dict:
    """Per-frame fractions of thin-object, occluded and moving-object pixels, the flow check
    (photometric error, label agreement on non-occluded pixels) and per-class pixel counts."""
    thin = np.isin(clip.labels, np.asarray(CAMVID.thin, np.uint8)).mean(axis=(1, 2))  # (T,)
    occ = clip.occlusion.mean(axis=(1, 2))
    moving = clip.moving_mask().mean(axis=(1, 2)) if clip.instances is not None else np.zeros(len(thin))
    errs, agrees = [], []
    for t in range(1, len(clip.frames)):
        e, a = warp_check(clip.frames[t - 1], clip.frames[t], clip.labels[t - 1], clip.labels[t],
                          clip.flow_bwd[t], clip.occlusion[t])
        errs.append(e)
        agrees.append(a)
    counts = np.bincount(clip.labels.ravel(), minlength=256)
    return {
        "thin_fraction": [round(float(x), 5) for x in thin],
        "occluded_fraction": [round(float(x), 5) for x in occ],
        "moving_fraction": [round(float(x), 5) for x in moving],
        "photometric_error": [round(x, 3) for x in errs],
        "label_agreement": [round(x, 5) for x in agrees],
        "class_pixels": {n: int(counts[i]) for i, n in enumerate(CAMVID.names)}
        | {"void": int(counts[IGNORE_INDEX])},
    }
