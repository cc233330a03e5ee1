"""What an evaluation runs on: the sequence source of a data set and the flow that temporal
consistency (Eq. 8) warps the previous prediction with.

:class:`EvalData` names the data (SynthDrive generated on the fly or read from disk, a CamVid split,
or the pix2pix copy of Cityscapes: single frames, e.g. the held-out files of
``recipes/cityscapes_heldout.txt``); :func:`eval_source` opens it as an :class:`EvalSource`: the
sequences, the ground-truth flow lookup where the data has one, the default TC flow, the label space
and whether the sequences are single frames (only the per-frame network can be scored on those).
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
import torch.nn.functional as F

from evss.data.camvid import CamVid
from evss.data.cityscapes_pix2pix import CityscapesPix2Pix, read_number_list
from evss.data.sources import ClipSource
from evss.data.synthdrive import SynthDriveConfig, SynthDriveDataset
from evss.errors import EvssError
from evss.flow_sources import make_flow_source
from evss.media import open_video, resize_image, write_video_frames
from evss.models.upsample import upsample4
from evss.tensors import to_tensor

# (sequence, frame) -> (backward flow (2, H, W) of frame t to t-1 in pixels, valid mask (H, W) or None)
FlowLookup = Callable[[int, int], "tuple[np.ndarray, np.ndarray | None]"]
SHARED_DATA = Path(__file__).resolve().parents[3].parent / "shared" / "data"  # beside the checkout
CAMVID_ROOT = SHARED_DATA / "camvid"
CITYSCAPES_PIX2PIX_ROOT = SHARED_DATA / "cityscapes_pix2pix"
TC_FLOWS = ("gt", "learned", "dis", "none")
DATA_KINDS = ("synthdrive", "camvid", "cityscapes_pix2pix")


@dataclass(frozen=True)
class EvalData:
    """The data of an evaluation.

    ``kind``: one of :data:`DATA_KINDS`. ``root``: a SynthDrive folder written by `evss synth` (None:
    generate ``clips`` clips of ``frames`` frames at ``size`` (H, W) from ``seed``), the CamVid root
    or the pix2pix Cityscapes root (None: ../shared/data/camvid or cityscapes_pix2pix beside the
    checkout); ``split``: its split (None: CamVid's val, the pix2pix files' train).
    ``holdout_list``: for cityscapes_pix2pix, the file of file numbers to evaluate (None: every file
    of the split), e.g. ``recipes/cityscapes_heldout.txt``.
    """

    kind: str = "synthdrive"
    root: Path | None = None
    split: str | None = None
    clips: int = 8
    seed: int = 1000  # apart from the training seeds
    size: tuple[int, int] = (256, 512)
    frames: int = 30
    holdout_list: Path | None = None


@dataclass(frozen=True)
class EvalSource:
    """An opened :class:`EvalData`: ``source`` (a ``SequenceSource``), ``gt_flow`` (the true flow
    with its valid mask, None for real video), the TC flow used when none is named, the label space;
    ``single_frames``: every sequence is one frame (no keyframe before it, no pair for TC)."""

    source: Any
    gt_flow: FlowLookup | None
    tc_flow_default: str
    label_space: str
    single_frames: bool = False


def model_frame(frame: np.ndarray, size: tuple[int, int] | None) -> np.ndarray:
    """The frame the model segments: as it is, or downscaled to ``size`` (the memory budget)."""
    return frame if size is None else resize_image(frame, *size)


def eval_source(data: EvalData) -> EvalSource:
    """Open ``data``: its sequences, ground-truth TC flow (SynthDrive), default TC flow and label space."""
    if data.kind == "synthdrive":
        return _synthdrive(data)
    if data.kind == "camvid":
        root = data.root or CAMVID_ROOT
        if not root.exists():
            raise EvssError(f"CamVid root {root} does not exist (pass --root)")
        return EvalSource(CamVid(root, data.split or "val", max_step=2), None, "dis", "camvid")
    if data.kind == "cityscapes_pix2pix":
        return _cityscapes_pix2pix(data)
    raise EvssError(f"unknown --data {data.kind!r}")


def _synthdrive(data: EvalData) -> EvalSource:
    """SynthDrive read from ``data.root`` or generated, with its true flow (occluded pixels invalid)."""
    if data.root is not None:
        ds = SynthDriveDataset(data.root)
    else:
        h, w = data.size
        ds = SynthDriveDataset(None, clips=data.clips, seed=data.seed,
                               config=SynthDriveConfig(height=h, width=w, frames=data.frames))
    source = ClipSource(ds)  # keeps the last clip: its frames, labels and flow are read together

    def gt_flow(s: int, t: int) -> tuple[np.ndarray, np.ndarray]:
        c = source.clip(s)
        return c.flow_bwd[t], ~c.occlusion[t]

    return EvalSource(source, gt_flow, "gt", "camvid")


def _cityscapes_pix2pix(data: EvalData) -> EvalSource:
    """The pix2pix Cityscapes files (single frames, 256x512, 19 classes): those of ``data.holdout_list``
    or the whole split; a missing root, list or listed file raises an error naming it."""
    root = data.root or CITYSCAPES_PIX2PIX_ROOT
    if not root.exists():
        raise EvssError(f"Cityscapes pix2pix root {root} does not exist (pass --root)")
    only = read_number_list(data.holdout_list) if data.holdout_list is not None else None
    source = CityscapesPix2Pix(root, data.split or "train", only=only)
    return EvalSource(source, None, "none", "cityscapes", single_frames=True)


def tc_flow_for(name: str, opened: EvalSource, model: Any, device: torch.device, *, kind: str,
            model_size: tuple[int, int] | None = None) -> FlowLookup | None:
    """The flow TC warps with, by ``name`` (see :data:`TC_FLOWS`): None for "none", the data's own for
    "gt", an estimate for "learned" (``model``'s FlowNet) and "dis"; ``kind`` names the data in errors."""
    if name == "none":
        return None
    if name in ("learned", "dis"):
        return estimated_flow(name, model, opened.source, device, model_size)
    if opened.gt_flow is None:
        raise EvssError(f"--tc-flow gt needs ground-truth flow, which {kind} does not have")
    return opened.gt_flow


def estimated_flow(name: str, model: Any, source: Any, device: torch.device,
                   model_size: tuple[int, int] | None = None) -> FlowLookup:
    """TC flow for real video: an estimator at 1/4 (of ``model_size`` when given), upsampled to full resolution."""
    est = make_flow_source("dis", model) if name == "dis" else model.flow

    def lookup(s: int, t: int) -> tuple[np.ndarray, None]:
        first = source.frame(s, t - 1)
        a = to_tensor(model_frame(first, model_size), device, torch.float32)  # (1, 3, h, w)
        b = to_tensor(model_frame(source.frame(s, t), model_size), device, torch.float32)
        h, w = a.shape[-2:]
        with torch.inference_mode():
            q = est(a, b)  # (1, 2, h/4, w/4) in 1/4-grid pixels
            full = upsample4(q, (h, w))[0] * 4  # (2, h, w) in pixels
            fh, fw = first.shape[:2]
            if (fh, fw) != (h, w):  # to the frames' own size, the vectors scaled with it
                full = F.interpolate(full[None], size=(fh, fw), mode="bilinear", align_corners=False)[0]
                full = full * torch.tensor([fw / w, fh / h], device=full.device).view(2, 1, 1)
        return full.cpu().numpy(), None

    return lookup


def motion_fields(frames: list[np.ndarray], *, fps: float = 15, crf: int = 18) -> list[np.ndarray | None]:
    """Codec motion vectors for a sequence of frames that is not a video file (CamVid's PNGs,
    SynthDrive): the frames are H.264-encoded (x264, ``crf``) into a temporary file and decoded with
    the vectors exported, exactly as ``evss segment --flow mv`` reads a video. One field per frame
    (the backward flow to the previous frame on the 1/4 grid, see :class:`evss.flow_sources.MVFlow`;
    None for an I frame)."""
    with tempfile.TemporaryDirectory() as tmp:
        path = write_video_frames(Path(tmp) / "clip.mp4", frames, fps=fps, crf=crf)
        with open_video(path, motion_vectors=True) as video:
            fields = [f.motion for f in video]
    if len(fields) != len(frames):
        raise EvssError(f"motion vectors: {len(frames)} frames encoded, {len(fields)} decoded")
    return fields
