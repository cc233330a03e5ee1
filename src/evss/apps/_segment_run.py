"""The state of one `evss segment` run: its memory plan, its running totals, its Ctrl-C guard."""

from __future__ import annotations

import argparse
import signal
import threading
from dataclasses import dataclass, field
from typing import Any

import torch

from evss import memory
from evss.pipeline.outputs import maps_as_video


@dataclass(frozen=True)
class MemoryPlan:
    plan: memory.Plan  # the size the model segments at
    video: tuple[int, int]  # (H, W) of the output video (twice as wide for --layout side)
    map_video: tuple[int, int]  # (H, W) of map videos
    depth: int  # frames decoded ahead and queued for the encoder (0: one thread, one frame at a time)

    @classmethod
    def of(cls, args: argparse.Namespace, info: Any, config: Any, device: torch.device,
           dtype: torch.dtype) -> "MemoryPlan":
        """The sizes to segment and encode at under the memory budget (see :mod:`evss.memory`)."""
        h, w = info.height, info.width
        factor = 2 if args.layout == "side" else 1
        video, map_video = memory.h264_size(h, w * factor), memory.h264_size(h, w)
        depth = memory.pipeline_depth(h, w)
        n_maps = len(args.maps) if args.save_maps else 0
        map_videos = bool(args.save_maps) and maps_as_video(args.save_maps)
        model_px = memory.model_pixel_bytes(config, maps=n_maps > 0, dtype_bytes=torch.finfo(dtype).bits // 8)
        weights = memory.weights_bytes(config)
        buffers = memory.segment_buffers(h, w, video_height=video[0], video_width=video[1], depth=depth,
                                         weights=weights, labels=bool(args.save_labels), maps=n_maps,
                                         map_video=map_video if map_videos else None)
        remedy = "; --max-size N makes every output smaller too"
        budget = memory.resolve_budget(args.max_memory)
        on_host = device.type in ("cpu", "mps")  # MPS shares the host's memory
        plan = memory.plan(height=h, width=w, model_px=model_px if on_host else 4.0, buffers=buffers, budget=budget,
                           allow_downscale=not args.no_downscale, what=args.input, remedy=remedy)
        if device.type == "cuda":  # the activations live on the GPU: its free memory is the budget there
            free, _ = torch.cuda.mem_get_info(device)
            gpu = memory.plan(height=h, width=w, model_px=model_px, buffers=memory.Buffers(held=weights, writing=0),
                              budget=memory.Budget(int(free * 0.9), f"90% of the free memory of {device}"),
                              allow_downscale=not args.no_downscale, what=args.input, remedy=remedy)
            if gpu.height * gpu.width < plan.height * plan.width:
                plan = gpu
        return cls(plan=plan, video=video, map_video=map_video, depth=depth)


@dataclass
class Progress:
    """What the frame loop saw: running totals for the closing summary (constant memory, whatever
    the video length) and the undecodable frames."""

    frames: int = 0
    keyframes: int = 0
    redone: int = 0
    key_s: float = 0.0
    non_s: float = 0.0
    first_s: float | None = None  # frame 0 carries one-off allocations
    bad: list[int] = field(default_factory=list)  # undecodable frames (--on-error skip)
    bad_seconds: list[float] = field(default_factory=list)  # their times from the first frame, where known
    first_error: str = ""
    no_vectors: int = 0  # frames the mv flow source had no vectors for
    interrupted: bool = False  # Ctrl-C
    ok: bool = False  # the input was read to its end

    def add(self, is_keyframe: bool, redone: bool, seconds: float) -> None:
        if self.first_s is None:
            self.first_s = seconds
        elif is_keyframe:
            self.key_s += seconds
        else:
            self.non_s += seconds
        self.frames += 1
        self.keyframes += is_keyframe
        self.redone += redone

    def add_bad(self, index: int, seconds: float | None, error: str) -> None:
        self.bad.append(index)
        if seconds is not None:
            self.bad_seconds.append(seconds)
        self.first_error = self.first_error or error

    def summary(self, wall: float) -> dict:
        n, k = self.frames, self.keyframes
        key_ms = 1000 * self.key_s / (k - 1) if k > 1 else (1000 * self.first_s if k else None)
        non_ms = 1000 * self.non_s / (n - k) if n > k else None
        model_s = self.key_s + self.non_s + (self.first_s or 0.0)
        return {"frames": n, "keyframes": k, "redone_keyframes": self.redone, "ms_per_keyframe": key_ms,
                "ms_per_non_keyframe": non_ms, "model_fps": n / model_s if n and model_s > 0 else None,
                "overall_fps": n / wall if n and wall > 0 else None, "seconds": wall}


class StopOnSigint:
    """Turns the first Ctrl-C (SIGINT) into a request to stop after the current frame.

    The frame loop checks ``requested`` between frames, so an interrupt never lands halfway
    through encoding a frame: the video is finished with exactly the frames reported. A second
    Ctrl-C raises KeyboardInterrupt at once (the outputs are still finished). Only the main thread
    can install signal handlers; elsewhere, and where SIGINT is ignored, nothing changes.
    """

    def __init__(self) -> None:
        self.requested = False
        self._previous = None

    def __enter__(self) -> "StopOnSigint":
        if threading.current_thread() is threading.main_thread():
            previous = signal.getsignal(signal.SIGINT)
            if previous is not signal.SIG_IGN:
                self._previous = previous
                signal.signal(signal.SIGINT, self._handle)
        return self

    def _handle(self, signum, frame) -> None:
        self.requested = True
        signal.signal(signal.SIGINT, signal.default_int_handler)

    def __exit__(self, *exc) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)
            self._previous = None


def spans(indices: list[int]) -> list[str]:
    """[3, 4, 5, 9] -> ["3-5", "9"]: runs of consecutive frame numbers."""
    out: list[str] = []
    for i in indices:
        if out and i == int(out[-1].split("-")[-1]) + 1:
            out[-1] = f"{out[-1].split('-')[0]}-{i}"
        else:
            out.append(str(i))
    return out


def frame_list(indices: list, limit: int = 20) -> str:
    shown = ", ".join(map(str, indices[:limit]))
    return shown + (f" ... ({len(indices)} in all)" if len(indices) > limit else "")
