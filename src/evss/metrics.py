"""Segmentation metrics: confusion matrix, IoU, temporal consistency (Eq. 8) with its label warp,
corrected labels (Eq. 9).

Temporal consistency has one implementation, :class:`TemporalConsistency` (per sequence and pooled
by the pair's place in the keyframe interval); `evss eval`, `evss demo` and
:func:`temporal_consistency` all count through it.

Pure functions on numpy arrays or torch tensors of class ids, plus two small accumulators for
evaluation loops. Confusion matrices are int64 (C, C) numpy arrays with rows = ground truth
(target) and columns = prediction.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from evss.classes import IGNORE_INDEX

Labels = np.ndarray | torch.Tensor


def _as_int64(x: Labels) -> np.ndarray | torch.Tensor:
    return x.long() if isinstance(x, torch.Tensor) else np.asarray(x).astype(np.int64, copy=False)


def confusion_matrix(pred: Labels, target: Labels, num_classes: int,
                     ignore_index: int | None = IGNORE_INDEX) -> np.ndarray:
    """int64 (C, C) counts via one bincount: ``cm[g, p]`` = pixels of class g predicted as p.

    Pixels whose target is ``ignore_index`` are skipped. A target or prediction outside
    ``[0, C)`` (other than the ignored target) raises ValueError: it means mismatched label spaces.
    Tensors are counted on their own device.
    """
    if tuple(pred.shape) != tuple(target.shape):
        raise ValueError(f"prediction {tuple(pred.shape)} and target {tuple(target.shape)} differ "
                         "in shape")
    c = int(num_classes)
    p, g = _as_int64(pred).reshape(-1), _as_int64(target).reshape(-1)
    if isinstance(p, torch.Tensor) != isinstance(g, torch.Tensor):
        # Mixed inputs: count on the CPU in numpy.
        p = p.cpu().numpy() if isinstance(p, torch.Tensor) else p
        g = g.cpu().numpy() if isinstance(g, torch.Tensor) else g
    if ignore_index is not None:
        keep = g != ignore_index
        p, g = p[keep], g[keep]
    for name, x in (("target", g), ("prediction", p)):
        if x.numel() if isinstance(x, torch.Tensor) else x.size:
            lo, hi = int(x.min()), int(x.max())
            if lo < 0 or hi >= c:
                raise ValueError(f"{name} holds class id {lo if lo < 0 else hi}, outside 0..{c - 1}"
                                 + (f" (ignore index {ignore_index})" if name == "target" else ""))
    if isinstance(p, torch.Tensor):
        counts = torch.bincount(g * c + p, minlength=c * c)  # (C*C,)
        return counts.reshape(c, c).cpu().numpy().astype(np.int64)
    return np.bincount(g * c + p, minlength=c * c).reshape(c, c).astype(np.int64)  # (C, C)


def iou_per_class(cm: np.ndarray) -> np.ndarray:
    """IoU_c = TP / (TP + FP + FN) per class; NaN for a class absent from target and prediction."""
    cm = np.asarray(cm, dtype=np.float64)
    tp = np.diag(cm)
    union = cm.sum(axis=0) + cm.sum(axis=1) - tp
    iou = np.full(tp.shape, np.nan)
    np.divide(tp, union, out=iou, where=union > 0)
    return iou


def mean_iou(cm: np.ndarray) -> float:
    """Mean of the per-class IoU over classes present in target or prediction (NaN if none)."""
    iou = iou_per_class(cm)
    return float(np.nanmean(iou)) if np.isfinite(iou).any() else float("nan")


def pixel_accuracy(cm: np.ndarray) -> float:
    """Fraction of counted pixels predicted correctly (NaN for an empty matrix)."""
    cm = np.asarray(cm)
    total = cm.sum()
    return float(np.trace(cm) / total) if total > 0 else float("nan")


def corrected_labels(warped_pred: Labels, final_pred: Labels) -> float:
    """Eq. (9): CL = (1 / hw) sum_{x,y} Diff(P^w_{i-1->i}, P_i), the fraction of changed labels."""
    if tuple(warped_pred.shape) != tuple(final_pred.shape):
        raise ValueError(f"warped prediction {tuple(warped_pred.shape)} and final prediction "
                         f"{tuple(final_pred.shape)} differ in shape")
    if isinstance(warped_pred, torch.Tensor) and isinstance(final_pred, torch.Tensor):
        return float((warped_pred != final_pred).float().mean()) if warped_pred.numel() else float("nan")
    a, b = (x.cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)
            for x in (warped_pred, final_pred))
    return float(np.mean(a != b)) if a.size else float("nan")


def warp_labels(labels: np.ndarray, flow: np.ndarray) -> np.ndarray:
    """P^w_{t-1->t} of Eq. (8): nearest-neighbour backward warp of a label map (H, W) by the backward
    flow (2, H, W) of frame t to t-1 in pixels (convention of :mod:`evss.models.warp`), border clamped."""
    h, w = labels.shape
    ys, xs = np.mgrid[0:h, 0:w]
    sx = np.clip(np.rint(xs + flow[0]), 0, w - 1).astype(np.intp)
    sy = np.clip(np.rint(ys + flow[1]), 0, h - 1).astype(np.intp)
    return labels[sy, sx]  # (H, W)


def temporal_consistency(warped_preds: Sequence[Sequence[Labels] | Labels],
                         preds: Sequence[Sequence[Labels] | Labels], num_classes: int, *,
                         ignore_index: int | None = IGNORE_INDEX) -> float:
    """Eq. (8): TC = (1/N) sum_s mIoU(P^w_s, P_s) over N sequences.

    ``warped_preds[s]`` holds P^w_{1->2}, ..., P^w_{T-1->T} of sequence s (the prediction of each
    previous frame warped to the current one) and ``preds[s]`` holds P_2, ..., P_T: each is a list
    of (H, W) maps or one (T-1, H, W) array. The IoU of a sequence is taken over all its frames
    together (one confusion matrix per sequence), then averaged over sequences. Pixels equal to
    ``ignore_index`` in either map (e.g. warped from outside the frame) are not counted.
    """
    if len(warped_preds) != len(preds):
        raise ValueError(f"{len(warped_preds)} sequences of warped predictions but {len(preds)} "
                         "of predictions")
    tc = TemporalConsistency(num_classes, ignore_index=ignore_index)
    for s, (ws, ps) in enumerate(zip(warped_preds, preds)):
        if len(ws) != len(ps):
            raise ValueError(f"sequence {s}: {len(ws)} warped predictions but {len(ps)} predictions")
        for w, p in zip(ws, ps):
            tc.update(w, p)
        tc.end_sequence()
    return tc.compute()


def warp_previous(prev_labels: np.ndarray, flow: np.ndarray, valid: np.ndarray | None = None) -> np.ndarray:
    """P^w_{t-1->t} of Eq. (8) ready to score: ``prev_labels`` (H, W) warped by the backward flow
    (2, H, W) of frame t to t-1, with the pixels that have no true correspondence (``valid`` False:
    occluded or new content) set to the ignore index, so that they are not counted."""
    warped = warp_labels(prev_labels, flow)  # (H, W)
    if valid is not None:  # pixels with no true correspondence are not scored
        warped = np.where(valid, warped, IGNORE_INDEX).astype(np.uint8)
    return warped


class TemporalConsistency:
    """Accumulates Eq. (8) over a stream: ``update`` each frame, ``end_sequence`` after each video.

    ``update(prev_pred_warped, pred)`` adds P^w_{t-1->t} against P_t to the current sequence's
    confusion matrix, skipping pixels that are ``ignore_index`` in either map (a caller can mark
    occluded or out-of-frame pixels of the warped map that way); ``add_pair`` warps the previous
    prediction first (:func:`warp_previous`). ``compute()`` is the mean of the per-sequence mIoUs
    (``per_sequence``), counting a sequence that has updates but was not ended yet.

    With ``positions`` = n, a pair given a ``position`` (the evaluation passes t mod n, the place of
    the pair (t - 1, t) in a keyframe interval of n) is also pooled over all sequences by that
    position: ``by_position()`` shows where in the interval consistency is won or lost.
    """

    def __init__(self, num_classes: int, *, ignore_index: int | None = IGNORE_INDEX, positions: int = 0) -> None:
        self.num_classes = num_classes
        self.ignore_index = ignore_index
        self.per_sequence: list[float] = []
        self._current = np.zeros((num_classes, num_classes), dtype=np.int64)
        self._frames = 0
        self._by_position = [ConfusionMatrix(num_classes, ignore_index) for _ in range(positions)]

    def update(self, prev_pred_warped: Labels, pred: Labels, *, position: int | None = None) -> None:
        # IoU is symmetric, so the warped map can take the "target" side, where ignore is skipped.
        warped, cur = _as_int64(prev_pred_warped), _as_int64(pred)
        if isinstance(warped, torch.Tensor) != isinstance(cur, torch.Tensor):
            warped, cur = (x.cpu().numpy() if isinstance(x, torch.Tensor) else x for x in (warped, cur))
        if self.ignore_index is not None:
            if isinstance(cur, torch.Tensor):
                warped = torch.where(cur == self.ignore_index, self.ignore_index, warped)
            else:
                warped = np.where(cur == self.ignore_index, self.ignore_index, warped)
        pair = confusion_matrix(cur, warped, self.num_classes, self.ignore_index)  # (C, C)
        self._current += pair
        self._frames += 1
        if position is not None:
            if not 0 <= position < len(self._by_position):
                raise ValueError(f"position {position} is outside 0..{len(self._by_position) - 1} "
                                 f"(TemporalConsistency(positions={len(self._by_position)}))")
            self._by_position[position].matrix += pair

    def add_pair(self, prev_labels: np.ndarray, labels: Labels, flow: np.ndarray, valid: np.ndarray | None = None,
                 *, position: int | None = None) -> None:
        """Eq. (8) for the pair (t - 1, t): P_{t-1} (``prev_labels``) warped to t by the backward
        ``flow`` (``valid`` False: not scored) against P_t (``labels``)."""
        self.update(warp_previous(prev_labels, flow, valid), labels, position=position)

    def end_sequence(self) -> None:
        if self._frames:
            self.per_sequence.append(mean_iou(self._current))
        self._current[:] = 0
        self._frames = 0

    def compute(self) -> float:
        values = self.per_sequence + ([mean_iou(self._current)] if self._frames else [])
        return float(np.mean(values)) if values else float("nan")

    def by_position(self) -> list[float | None]:
        """mIoU of the pairs pooled at each position (None where no pixel was counted)."""
        return [mean_iou(cm.matrix) if cm.matrix.any() else None for cm in self._by_position]

    def all_reduce(self) -> TemporalConsistency:
        """Join the torch.distributed ranks (no-op when not initialised; call after ``end_sequence``):
        every rank gets all ranks' per-sequence values in rank order and the summed position counts."""
        dist = torch.distributed
        if not (dist.is_available() and dist.is_initialized()):
            return self
        gathered: list[Any] = [None] * dist.get_world_size()
        dist.all_gather_object(gathered, self.per_sequence)
        self.per_sequence = [float(v) for values in gathered for v in values]
        for cm in self._by_position:
            cm.all_reduce()
        return self

    def reset(self) -> None:
        self.per_sequence = []
        self._current[:] = 0
        self._frames = 0
        for cm in self._by_position:
            cm.reset()


class ConfusionMatrix:
    """Running confusion matrix for evaluation: ``update`` per batch, ``compute`` at the end."""

    def __init__(self, num_classes: int, ignore_index: int | None = IGNORE_INDEX) -> None:
        self.num_classes = num_classes
        self.ignore_index = ignore_index
        self.matrix = np.zeros((num_classes, num_classes), dtype=np.int64)  # rows = target

    def update(self, pred: Labels, target: Labels) -> None:
        self.matrix += confusion_matrix(pred, target, self.num_classes, self.ignore_index)

    def merge(self, other: ConfusionMatrix) -> ConfusionMatrix:
        """Add ``other``'s counts to this matrix (``other`` is not changed); returns self."""
        if other.matrix.shape != self.matrix.shape:
            raise ValueError(f"cannot merge a {other.num_classes}-class matrix into a "
                             f"{self.num_classes}-class one")
        self.matrix += other.matrix
        return self

    def all_reduce(self) -> ConfusionMatrix:
        """Sum the counts of all torch.distributed ranks (no-op when not initialised); returns self."""
        dist = torch.distributed
        if not (dist.is_available() and dist.is_initialized()):
            return self
        device = (torch.device("cuda", torch.cuda.current_device())
                  if dist.get_backend() == "nccl" else torch.device("cpu"))
        t = torch.from_numpy(self.matrix).to(device)
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
        self.matrix = t.cpu().numpy().astype(np.int64)
        return self

    def compute(self) -> dict[str, Any]:
        """``miou`` (float), ``per_class_iou`` ((C,) float64, NaN = class absent), ``pixel_acc``."""
        return {
            "miou": mean_iou(self.matrix),
            "per_class_iou": iou_per_class(self.matrix),
            "pixel_acc": pixel_accuracy(self.matrix),
        }

    def reset(self) -> None:
        self.matrix[:] = 0
