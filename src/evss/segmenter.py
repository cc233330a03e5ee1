"""VideoSegmenter: streaming Algorithm 1 over a sequence of frames.

The networks hold no state; everything that carries from one frame to the next (the propagated
features F_k, the prediction P_k, the reference image I_k, the keyframe counter) lives in this
object, so ``reset()`` starts a new video and memory does not grow with video length.

Three modes share the same code path, since two of them are the paper's baselines:

* ``"evss"``: Algorithm 1 (warp, correct with CoNet, fuse under the fine distortion map).
* ``"warp_only"``: DFF-style propagation without correction (lines 8 and 18 only).
* ``"per_frame"``: the backbone on every frame.

How features travel from the keyframe (``SegmenterConfig.propagation``): Algorithm 1 line 18 warps
the previous frame's warped features again (``"chained"``), so a frame d after the keyframe has been
resampled bilinearly d times and blurs. ``"composed"`` (the default) composes the frame-to-frame
flows into O_{i->k} and warps the keyframe's own features once; both read the same flows, and
composing costs one more warp per frame, of a 2-channel field. At d = 1 they agree exactly.
``benchmarks/propagation.py`` measured composed above chained on both dash-cam clips (agreement
with the per-frame labels) and on the CamVid val clip. ``"merged"`` (not in the paper) chains like
``"chained"`` but carries the previous frame's merged features F^m, so a correction made at one
frame is not made afresh, and differently, at the next. It is an ablation of line 18, not an option
to use: CoNet was trained on F^w and compounds its own corrections (SynthDrive validation clips,
`synthdrive_light`: 42.0 / 24.4 mIoU at d = 5 / 9 against 64.4 / 62.7, TC 64.0 against 74.1; README).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Iterable, Iterator

import numpy as np
import torch

from evss.errors import EvssError
from evss.keyframes import FixedInterval, KeyframePolicy
from evss.label_sets import collapse_probabilities
from evss.models.distortion import COARSE_REFERENCES, coarse_map, fine_map, fuse, merge
from evss.models.evss import EVSSNet, rectify
from evss.models.flow import FlowEstimator
from evss.models.upsample import class_argmax, labels_from_quarter, upsample4
from evss.models.warp import compose_flows, warp
from evss.tensors import pad_to_multiple, to_tensor

MODES = ("evss", "warp_only", "per_frame")
PROPAGATIONS = ("composed", "chained", "merged")


@dataclass(frozen=True)
class SegmenterConfig:
    mode: str = "evss"
    keyframe_interval: int = 5  # a keyframe every n frames (n = 1: every frame is a keyframe)
    pad_multiple: int = 32  # frames are edge-padded to a multiple of this, predictions cropped back
    # Algorithm 1 line 19 updates P_k <- P_i ("previous"); the authors' test script compares with
    # the keyframe's own prediction after several warps ("keyframe"), reference §11. None: the
    # weights' own choice (DistortionConfig.coarse_reference).
    coarse_reference: str | None = None
    # "quarter": fuse at the 1/4 grid and upsample the merged logits (Sec. III); "full": upsample
    # every part first and fuse at full resolution, as the authors' test script does.
    merge_resolution: str = "quarter"
    # "fast": argmax on the 1/4 grid, exact interpolation only where neighbours disagree (the same
    # labels up to float ties, evss.models.upsample); "exact": upsample every channel, then argmax.
    labels: str = "fast"
    # "composed": warp F^b_k once along the composed flow O_{i->k}; "chained": warp the previous
    # frame's F^w (Algorithm 1 line 18 as written); "merged" (not in the paper): warp the previous
    # frame's F^m, so CoNet's corrections carry on (an ablation: far worse). See the module docstring.
    propagation: str = "composed"

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise EvssError(f"segmenter mode {self.mode!r} is not one of {MODES}")
        if self.keyframe_interval < 1:
            raise EvssError(f"keyframe interval must be >= 1, got {self.keyframe_interval}")
        if self.pad_multiple < 1:
            raise EvssError(f"pad_multiple must be >= 1, got {self.pad_multiple}")
        if self.coarse_reference not in (None,) + COARSE_REFERENCES:
            raise EvssError(f"coarse_reference {self.coarse_reference!r} is not one of {COARSE_REFERENCES}")
        if self.labels not in ("fast", "exact"):
            raise EvssError(f"labels {self.labels!r} is not 'fast' or 'exact'")
        if self.merge_resolution not in ("quarter", "full"):
            raise EvssError(f"merge_resolution {self.merge_resolution!r} is not 'quarter' or 'full'")
        if self.propagation not in PROPAGATIONS:
            raise EvssError(f"propagation {self.propagation!r} is not one of {PROPAGATIONS}")


@dataclass
class FrameResult:
    index: int
    labels: np.ndarray  # (H, W) uint8 class ids at input resolution
    is_keyframe: bool
    seconds: float  # wall time of this frame's networks and fusion
    maps: dict[str, np.ndarray] = field(default_factory=dict)  # coarse/edge/fine (H, W) float32 in [0, 1]
    warped_labels: np.ndarray | None = None  # (H, W) uint8 argmax of the warped features
    fine_mean: float | None = None  # mean of the fine distortion map (for adaptive keyframes)
    fine_share: float | None = None  # share of 1/4-grid pixels with M^f > 0.5 (Eq. 7's binarisation)
    redone: bool = False  # a non-keyframe that the policy rejected and re-segmented as a keyframe


class VideoSegmenter:
    """Streams frames through Algorithm 1 and yields one label map per frame.

    ``model`` supplies the parts (backbone, flow, CoNet, distortion config); ``flow`` optionally
    replaces the model's FlowNet by any :class:`FlowEstimator`. ``label_sets`` (K, C) bool, for
    scoring on another label space (:func:`evss.label_sets.collapse_table`): the labels it returns
    (``labels``, ``warped_labels``) are then ids of the K sets, each pixel the set with the largest
    summed softmax probability of the logits upsampled to full resolution (the held-out evaluation
    of training does the same); what propagates (F_k, P_k) stays in the model's C classes.
    """

    def __init__(self, model: EVSSNet, *, config: SegmenterConfig = SegmenterConfig(),
                 device: torch.device | str | None = None, flow: FlowEstimator | None = None,
                 keyframe_policy: KeyframePolicy | None = None, return_maps: bool = False,
                 dtype: torch.dtype = torch.float32, label_sets: torch.Tensor | None = None) -> None:
        self.config = config
        self.label_sets = label_sets
        self.device = torch.device(device) if device is not None else next(model.parameters()).device
        self.dtype = dtype
        # BN folded and NHWC for SwiftNet keyframe networks (before any cast to half): the model is
        # for inference from here on.
        model.prepare_inference()
        self.model = model.to(self.device, dtype).eval()
        self.flow: FlowEstimator = flow if flow is not None else self.model.flow
        self.policy = keyframe_policy or FixedInterval(config.keyframe_interval)
        self.return_maps = return_maps
        self.reset()

    def reset(self) -> None:
        """Forget the current video: the next frame is a keyframe."""
        self._feat: torch.Tensor | None = None  # F_k: propagated features (1, C, h, w); F^b_k when composed
        self._flow: torch.Tensor | None = None  # O_{i->k}: composed flow back to the keyframe (1, 2, h, w)
        self._pred: torch.Tensor | None = None  # P_k: (1, h, w)
        self._image: torch.Tensor | None = None  # I_k: padded (1, 3, Hp, Wp)
        self._size: tuple[int, int] | None = None
        self._index = 0
        self._since_key = 0
        self._last: FrameResult | None = None

    def segment(self, frames: Iterable[np.ndarray | torch.Tensor]) -> Iterator[FrameResult]:
        for frame in frames:
            yield self.step(frame)

    def _sync(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    def _upsample(self, x: torch.Tensor) -> torch.Tensor:
        """1/4-grid maps -> input resolution: x4 bilinear (align_corners=False), then crop."""
        return upsample4(x, self._size)  # (1, C, H, W)

    def _labels(self, logits: torch.Tensor) -> np.ndarray:
        """Lines 16-17: class ids (H, W) uint8 at input resolution (ids of the label sets when given)."""
        if self.label_sets is not None:
            return self._set_labels(self._upsample(logits))
        return labels_from_quarter(logits, self._size, exact=self.config.labels == "exact").cpu().numpy()

    def _set_labels(self, full: torch.Tensor) -> np.ndarray:
        """(1, C, H, W) logits -> (H, W) uint8 ids of the label sets (the argmax of their summed probabilities)."""
        return class_argmax(collapse_probabilities(full, self.label_sets))[0].to(torch.uint8).cpu().numpy()

    def _map(self, m: torch.Tensor) -> np.ndarray:
        return self._upsample(m)[0, 0].clamp(0, 1).float().cpu().numpy()  # (H, W)

    @torch.inference_mode()
    def step(self, frame: np.ndarray | torch.Tensor) -> FrameResult:
        image = to_tensor(frame, self.device, self.dtype)
        h, w = image.shape[-2:]
        if self._size is None:
            self._size = (h, w)
        elif self._size != (h, w):
            raise EvssError(f"frame {self._index} is {h}x{w}, the clip started at {self._size[0]}x{self._size[1]}; "
                            "call reset() between videos")
        image = pad_to_multiple(image, self.config.pad_multiple)  # (1, 3, Hp, Wp)
        is_key = (self._feat is None or self.config.mode == "per_frame"
                  or self.policy(index=self._index, since_key=self._since_key, last=self._last))
        self._sync()
        t0 = time.perf_counter()
        if is_key:
            result = self._keyframe(image)
        elif self.config.mode == "warp_only":
            result = self._warp_only(image)
        else:
            result = self._non_keyframe(image)
        # Optional policy hook (evss.keyframes.AdaptiveKeyframes): when the propagated features of
        # this very frame are judged too degraded (a hard cut, say), it becomes a keyframe after all.
        redo = getattr(self.policy, "redo_as_keyframe", None)
        if not is_key and redo is not None and redo(result):
            result = self._keyframe(image)
            result.redone = is_key = True
        self._sync()
        result.seconds = time.perf_counter() - t0
        self._since_key = 1 if is_key else self._since_key + 1
        self._index += 1
        self._last = result
        return result

    def _keyframe(self, image: torch.Tensor) -> FrameResult:
        feat = self.model.backbone(image)  # (1, C, h, w)   lines 3-6
        # P_k only feeds the coarse map (Eq. 3): warp-only and per-frame streams skip the argmax
        self._feat, self._pred, self._image = feat, class_argmax(feat) if self.config.mode == "evss" else None, image
        self._flow = None
        res = FrameResult(index=self._index, labels=self._labels(feat), is_keyframe=True, seconds=0.0)
        if self.return_maps:
            zero = np.zeros(self._size, dtype=np.float32)
            res.maps = {"coarse": zero, "edge": zero, "fine": zero}
            res.warped_labels = res.labels
        return res

    def _propagate(self, image: torch.Tensor) -> torch.Tensor:
        """Line 8, Eq. (1): F^w_i, the keyframe's features brought to this frame; lines 18 and 20."""
        flow = self.flow(self._image, image)  # (1, 2, h, w)  O_{i->i-1}
        self._image = image  # line 20: I_k <- I_i
        if self.config.propagation in ("chained", "merged"):
            self._feat = warp(self._feat, flow)  # (1, C, h, w)  line 18: F_k <- F^w_i (F^m: below)
            return self._feat
        self._flow = compose_flows(self._flow, flow)  # (1, 2, h, w)  O_{i->k}
        return warp(self._feat, self._flow)  # (1, C, h, w)

    def _warp_only(self, image: torch.Tensor) -> FrameResult:
        warped = self._propagate(image)  # (1, C, h, w)  no P_i: only EVSS's coarse map reads it
        res = FrameResult(index=self._index, labels=self._labels(warped), is_keyframe=False, seconds=0.0)
        res.warped_labels = res.labels if self.return_maps else None
        return res

    def _non_keyframe(self, image: torch.Tensor) -> FrameResult:
        warped = self._propagate(image)  # (1, C, h, w)   line 8, Eq. (1)
        key_pred = self._pred  # P_k
        if self.config.merge_resolution == "quarter":
            parts = rectify(correction=self.model.correction, distortion=self.model.distortion,
                            image=image, warped=warped, key_pred=key_pred)  # lines 9-15
            merged = parts["merged_logits"]  # (1, C, h, w)
            labels = self._labels(merged)  # lines 16-17
            pred = class_argmax(merged)  # (1, h, w)  P_i
            maps = {k: parts[f"{k}_map"] for k in ("coarse", "edge", "fine")}
            full_maps = None
        else:
            labels, pred, maps, full_maps, merged = self._full_resolution_merge(image, warped, key_pred)
        if self.config.propagation == "merged":
            self._feat = merged  # (1, C, h, w)  F_k <- F^m_i instead of line 18's F^w_i
        # Line 19: P_k <- P_i (lines 18 and 20 ran in _propagate: the *warped* features propagate).
        if (self.config.coarse_reference or self.model.distortion.coarse_reference) == "previous":
            self._pred = pred
        res = FrameResult(index=self._index, labels=labels, is_keyframe=False, seconds=0.0)
        if self.return_maps or not isinstance(self.policy, FixedInterval):
            # two host syncs: only for a policy that reads them (adaptive keyframes) or on request
            fine_q = maps["fine"]
            res.fine_mean, res.fine_share = float(fine_q.mean()), float((fine_q > 0.5).float().mean())
        if self.return_maps:
            res.maps = full_maps or {k: self._map(m) for k, m in maps.items()}
            res.warped_labels = self._labels(warped)
        return res

    def _full_resolution_merge(self, image, warped, key_pred):
        """The authors' test-time merge: upsample F^w, F^u, edge scores and M^c, fuse at full size."""
        correction, distortion = self.model.correction, self.model.distortion
        updated, edge_scores = correction(image, warped)
        coarse = coarse_map(warped, key_pred)  # (1, 1, h, w)
        up_w, up_u = self._upsample(warped), self._upsample(updated)  # (1, C, H, W)
        edge = correction.edge_probability(self._upsample(edge_scores))  # softmax after upsampling
        coarse_up = self._upsample(coarse)
        fine = fine_map(coarse_up, edge, distortion)  # (1, 1, H, W)
        merged = fuse(up_w, up_u, fine, distortion)  # (1, C, H, W)
        labels = (class_argmax(merged)[0].to(torch.uint8).cpu().numpy() if self.label_sets is None
                  else self._set_labels(merged))
        # P_i on the 1/4 grid for the next coarse map: the quarter-grid merge's argmax.
        q_merged, _, q_fine = merge(warped, updated, correction.edge_probability(edge_scores), key_pred, distortion)
        pred = class_argmax(q_merged)
        maps = {"coarse": coarse, "edge": correction.edge_probability(edge_scores), "fine": q_fine}
        full = {"coarse": coarse_up[0, 0].float().cpu().numpy(), "edge": edge[0, 0].float().cpu().numpy(),
                "fine": fine[0, 0].float().cpu().numpy()} if self.return_maps else None
        return labels, pred, maps, full, q_merged
