"""What `evss eval` runs on: the sequence source of ``--data`` and the flow that temporal
consistency (Eq. 8) warps the previous prediction with."""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
import torch.nn.functional as F

from evss.data.camvid import CamVid
from evss.data.sources import ClipSource
from evss.data.synthdrive import SynthDriveConfig, SynthDriveDataset
from evss.errors import EvssError
from evss.flow_sources import make_flow_source
from evss.media import open_video, resize_image, write_video_frames
from evss.models.upsample import upsample4
from evss.tensors import to_tensor

# (sequence, frame) -> (backward flow (2, H, W) of frame t to t-1 in pixels, valid mask (H, W) or None)
FlowLookup = Callable[[int, int], "tuple[np.ndarray, np.ndarray | None]"]
CAMVID_ROOT = Path(__file__).resolve().parents[3].parent / "shared" / "data" / "camvid"  # beside the checkout


def model_frame(frame: np.ndarray, size: tuple[int, int] | None) -> np.ndarray:
    """The frame the model segments: as it is, or downscaled to ``size`` (the memory budget)."""
    return frame if size is None else resize_image(frame, *size)


def eval_source(args: argparse.Namespace) -> tuple[Any, FlowLookup | None, str, str]:
    """(source, ground-truth TC flow lookup or None, default TC flow name, label space) of ``--data``."""
    if args.data == "synthdrive":
        if args.root is not None:
            ds = SynthDriveDataset(args.root)
        else:
            h, w = args.size
            ds = SynthDriveDataset(None, clips=args.clips, seed=args.seed,
                                   config=SynthDriveConfig(height=h, width=w, frames=args.frames))
        source = ClipSource(ds)  # keeps the last clip: its frames, labels and flow are read together

        def gt_flow(s: int, t: int) -> tuple[np.ndarray, np.ndarray]:
            c = source.clip(s)
            return c.flow_bwd[t], ~c.occlusion[t]

        return source, gt_flow, "gt", "camvid"
    if args.data == "camvid":
        root = args.root or CAMVID_ROOT
        if not root.exists():
            raise EvssError(f"CamVid root {root} does not exist (pass --root)")
        return CamVid(root, args.split, max_step=2), None, "dis", "camvid"
    raise EvssError(f"unknown --data {args.data!r}")


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
