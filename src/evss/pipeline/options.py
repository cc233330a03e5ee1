"""Typed options of the segmenting pipeline: what `evss segment`'s flags set, for Python callers.

:class:`SegmentOptions` decides how frames are read and segmented (weights, keyframe schedule,
mode, flow, device, memory); :class:`OutputOptions` what :func:`evss.segment_video` writes beside
the video. Every field has the default of the flag of the same name (``--keyframe-interval`` is
``keyframe_interval``); values are checked when the options are made, so a bad value fails before
any file is opened.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from evss.backends import check_backend
from evss.errors import EvssError
from evss.media.reader import ON_ERROR
from evss.memory import MIN_SIDE, parse_bytes
from evss.pipeline.outputs import MAP_NAMES
from evss.segmenter import MODES, PROPAGATIONS

LAYOUTS = ("overlay", "side")
PIX_FMTS = ("yuv420p", "yuv444p")


def _unit(name: str, value: float) -> None:
    if not 0.0 <= value <= 1.0:
        raise EvssError(f"{name} must be in [0, 1], got {value}")


@dataclass(frozen=True)
class SegmentOptions:
    """How a video is read and segmented (the model, its schedule and the runtime)."""

    # -- model --
    weights: str | Path | None = None  # built-in name, evss checkpoint or the authors' .pth; None: the default
    keyframe_interval: int = 5  # a keyframe every N frames
    mode: str | None = None  # "evss", "warp_only", "per_frame"; None: the weights' default_mode
    flow: str | None = None  # "learned", "dis", "mv"; None: the flow the weights' CoNet was trained with
    propagation: str = "composed"  # "composed", "chained" (Algorithm 1 line 18 as written), "merged" (an ablation)
    adaptive: bool = False  # keyframes where the fine distortion map says propagation degraded
    max_interval: int = 10  # adaptive: longest run without a keyframe
    share: float = 0.25  # adaptive: keyframe when more than this share of pixels has M^f > 0.5
    residual: float = 0.08  # adaptive: keyframe when the flow leaves more mean grey error (1 disables)
    # -- runtime --
    device: str = "auto"  # auto, cpu, cuda, cuda:N or mps
    half: bool = False  # float16 on CUDA
    threads: int | None = None  # CPU threads for torch; None: torch's choice
    backend: str = "torch"  # runs the networks: "torch", "onnxruntime" (the keyframe network) or "openvino" (all)
    precision: str = "fp32"  # "fp32", or "int8" with backend "openvino" (NNCF post-training quantisation)
    max_size: int | None = None  # downscale frames so the longer side is at most this (outputs at that size)
    # segment frames whose longer side is over this downscaled to it, the labels upsampled (outputs keep
    # the frames' size); None: the weights' inference_size; 0: every frame at its own size
    inference_size: int | None = None
    max_memory: str | None = None  # memory budget such as "2G"; None: half the available memory, at most 3G
    allow_downscale: bool = True  # over the budget: segment a downscaled copy (False: stop with an error)
    fps: float | None = None  # frame rate of a folder of frames (default 25)
    on_error: str = "skip"  # an undecodable frame: "skip" (repeat the last good output) or "stop"
    progress: bool = True  # a progress bar on stderr

    def __post_init__(self) -> None:
        if self.keyframe_interval < 1:
            raise EvssError(f"--keyframe-interval must be >= 1, got {self.keyframe_interval}")
        if self.max_size is not None and self.max_size < 16:
            raise EvssError(f"--max-size must be at least 16 pixels, got {self.max_size}")
        if self.inference_size is not None and self.inference_size != 0 and self.inference_size < MIN_SIDE:
            raise EvssError(f"--inference-size must be at least {MIN_SIDE} pixels (or full), got {self.inference_size}")
        if self.max_memory is not None:
            parse_bytes(self.max_memory)  # a bad value is reported before anything is opened
        if self.mode is not None and self.mode not in MODES:
            raise EvssError(f"mode {self.mode!r} is not one of {MODES}")
        if self.propagation not in PROPAGATIONS:
            raise EvssError(f"propagation {self.propagation!r} is not one of {PROPAGATIONS}")
        check_backend(self.backend, self.precision)
        if self.on_error not in ON_ERROR:
            raise EvssError(f"on_error {self.on_error!r} is not one of {ON_ERROR}")
        if self.max_interval < 1:
            raise EvssError(f"max_interval must be >= 1, got {self.max_interval}")
        for name in ("share", "residual"):
            _unit(name, getattr(self, name))


@dataclass(frozen=True)
class OutputOptions:
    """What :func:`evss.segment_video` writes: the video's look and the optional label and map outputs."""

    layout: str = "overlay"  # overlay: labels blended over the frame; side: frame and labels side by side
    alpha: float = 0.5  # label opacity of the overlay
    save_labels: Path | None = None  # a folder of palette PNGs of class ids, one per frame
    save_maps: Path | None = None  # distortion maps: PNGs in DIR/<map>/, or videos if this ends in .mp4
    maps: tuple[str, ...] = ("fine",)  # which maps save_maps writes: fine, coarse, edge
    pix_fmt: str = "yuv420p"  # yuv420p plays everywhere but pads odd sizes by a pixel; yuv444p keeps them
    crf: int = 20  # H.264 quality, lower is better

    def __post_init__(self) -> None:
        if self.layout not in LAYOUTS:
            raise EvssError(f"layout {self.layout!r} is not one of {LAYOUTS}")
        _unit("alpha", self.alpha)
        bad = [m for m in self.maps if m not in MAP_NAMES]
        if bad or not self.maps:
            raise EvssError(f"maps takes names from {', '.join(MAP_NAMES)}, got {self.maps!r}")
        if self.pix_fmt not in PIX_FMTS:
            raise EvssError(f"pix_fmt {self.pix_fmt!r} is not one of {PIX_FMTS}")
        # Paths as given (str or Path): the sinks and the messages read them as Paths.
        for name in ("save_labels", "save_maps"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, Path):
                object.__setattr__(self, name, Path(value))

    @property
    def layout_factor(self) -> int:
        """How many frame widths the video holds side by side."""
        return 2 if self.layout == "side" else 1
