"""A memory budget: the peak memory of a run, estimated from the model config and the frame size
before any frame is touched, and the size to segment at so that it fits.

The estimate has two parts:

* the model's step at the size it segments at: bytes per (padded) pixel for the largest
  activations alive at once, from the config: the keyframe network (CSRNet scales with its
  width, SwiftNet on EfficientNet-Lite with its decoder) or the non-keyframe step (FlowNet and
  CoNet, with their widths), whichever is larger, plus the state Algorithm 1 carries (F_k, P_k,
  I_k) and the input tensors. The coefficients were measured as peak-RSS slopes on the CPU
  (``tests/test_memory.py`` checks the estimate against measurement across sizes);
* the buffers at the output size, which downscaling the model does not shrink: the decoded frames
  in flight, the upsampled labels, the rendered frame and the H.264 encoder (about 12 bytes per
  pixel of the video, measured), the label PNGs and the distortion maps.

``plan(...)`` picks the processing size: the input size when the whole estimate fits the
budget, else the largest size (same aspect ratio) whose estimate fits; the labels are then
upsampled back to the output size, so every output keeps the input's geometry.

The default budget is half the memory available now (``MemAvailable`` of /proc/meminfo), at most
:data:`DEFAULT_CAP`, so one run leaves room for others; ``--max-memory`` sets it.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from evss.errors import EvssError

KiB, MiB, GiB = 1024, 1024 ** 2, 1024 ** 3
DEFAULT_FRACTION = 0.5  # of MemAvailable
DEFAULT_CAP = 3 * GiB
BASELINE = 400 * MiB  # Python with torch, OpenCV and PyAV loaded, before the first frame (measured RSS ~300 MB)
SAFETY = 1.15  # the allocator's slack over the measured slopes
MIN_SIDE = 64  # the smallest longer side worth segmenting at

# Bytes per padded input pixel, float32, measured as the slope of peak RSS over frame size (CPU, one thread).
# Slopes at 768x1024 -> 1536x2048, one part's width varied at a time, the others at 1/8:
# keyframe step 106/225/403 B/px at CSRNet width 1/8, 1/2, 1; non-keyframe step 103/145/195 at
# FlowNet width 1/8, 1/2, 1 and 103/153/222 at CoNet width 1/8, 1/2, 1; SwiftNet-Lite0 277. Keyframe and
# non-keyframe steps in turn grow the peak by more than either alone (the allocator keeps what the other
# freed): 134-164 B/px for the tiny preset, which INPUT_PX covers (tests/test_memory.py).
INPUT_PX = 95.0  # the frame as float tensors (conversion, padding), I_k, the label upsample, allocator slack
CSRNET_PX = 340.0  # per unit of BackboneConfig.width
SWIFTNET_PX = {"lite0": 170.0, "lite1": 185.0, "lite2": 200.0}  # the encoder's stem and first stages
SWIFTNET_DECODER_PX = 0.45  # per decoder channel (the ladder's 1/4-scale maps)
FLOWNET_PX = 130.0  # per unit of FlowConfig.width
CONET_PX = 140.0  # per unit of CoNetConfig.width
CLASS_PX = 1.0  # per class: F_k, the warped and merged logits on the 1/4 grid (C x 4 B / 16 px, a few of them)
MAPS_PX = 40.0  # return_maps: three full-size float maps and their upsampling

VIDEO_PX = 10.0  # per pixel of the encoded video: the RGB copy, yuv420p and libx264's frames (measured 8-12)
H264_MAX_SIDE = 16384  # libx264 refuses larger widths and heights ("invalid width x height")
FFMPEG_MAX_PIXELS = (2 ** 31 - 1) // 8  # av_image_check_size: (w + 128) * (h + 128) must stay below this


_UNITS = {"": 1, "b": 1, "k": KiB, "kb": KiB, "kib": KiB, "m": MiB, "mb": MiB, "mib": MiB,
          "g": GiB, "gb": GiB, "gib": GiB, "t": 1024 * GiB, "tb": 1024 * GiB, "tib": 1024 * GiB}


def return_freed_memory(threshold: int = 1 << 20) -> bool:
    """glibc: allocations over ``threshold`` get their own mmap, returned to the OS when freed.

    glibc raises this threshold as large blocks are freed (up to 32 MiB), after which frame-sized
    buffers come from per-thread heaps that keep freed memory: the peak then depends on how the
    decoder, model and encoder threads interleave (a 2400x3200 run measured 660-720 MB alone and
    up to 940 MB beside other busy processes). A fixed threshold keeps the peak near the budget's
    estimate. Returns False where there is no glibc (the setting is then the platform's own).
    """
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name or "libc.so.6")
        return bool(libc.mallopt(-3, int(threshold)))  # M_MMAP_THRESHOLD = -3 (malloc.h)
    except (OSError, AttributeError):
        return False


def parse_bytes(text: str) -> int:
    """ "2G", "1500M", "512MiB", "3.5GB" or a plain byte count -> bytes (powers of 1024)."""
    m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([a-zA-Z]*)\s*", str(text))
    unit = m.group(2).lower() if m else None
    if m is None or unit not in _UNITS:
        raise EvssError(f"memory size {text!r} is not a number with an optional unit, e.g. 2G, 1500M or 512MiB")
    value = int(float(m.group(1)) * _UNITS[unit])
    if value < 1:
        raise EvssError(f"memory size {text!r} must be positive")
    return value


def format_bytes(n: float) -> str:
    """1.5 GiB -> "1.5 GB" (powers of 1024, as parse_bytes reads them)."""
    for unit, size in (("GB", GiB), ("MB", MiB), ("KB", KiB)):
        if abs(n) >= size:
            return f"{n / size:.1f} {unit}"
    return f"{int(n)} B"


def available_memory(meminfo: str | Path = "/proc/meminfo") -> int | None:
    """MemAvailable in bytes, None where the system does not say (not Linux)."""
    try:
        for line in Path(meminfo).read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * KiB
    except (OSError, ValueError, IndexError):
        return None
    return None


@dataclass(frozen=True)
class Budget:
    bytes: int
    source: str  # how it was chosen, for messages: "--max-memory 2G" or "half the available memory ..."


def resolve_budget(max_memory: str | None) -> Budget:
    """``--max-memory`` when given, else half of MemAvailable capped at DEFAULT_CAP."""
    if max_memory is not None:
        return Budget(parse_bytes(max_memory), f"--max-memory {max_memory}")
    avail = available_memory()
    if avail is None:
        return Budget(DEFAULT_CAP, f"the default {format_bytes(DEFAULT_CAP)} (available memory unknown)")
    value = min(int(avail * DEFAULT_FRACTION), DEFAULT_CAP)
    return Budget(value, f"the default: half the available {format_bytes(avail)}, at most {format_bytes(DEFAULT_CAP)}")


# ---- the model ---------------------------------------------------------------------------------

def weights_bytes(config: Any) -> int:
    """The float32 weights from the widths (parameters: CSRNet 12.8 M, FlowNet 5.5 M, CoNet 6.4 M at
    width 1, scaling with its square; SwiftNet-Lite 3.4 M); the light model is ~25 MB."""
    bb = config.backbone
    key = 12.8e6 * bb.width ** 2 if bb.arch == "csrnet" else 3.4e6
    return int(4 * (key + 5.5e6 * config.flow.width ** 2 + 6.4e6 * config.correction.width ** 2))


def model_pixel_bytes(config: Any, *, maps: bool = False, dtype_bytes: int = 4) -> float:
    """Peak bytes per padded pixel of one segmenter step (the larger of the keyframe and the
    non-keyframe step) for an :class:`evss.config.EVSSConfig`."""
    bb = config.backbone
    if bb.arch == "swiftnet":
        key = SWIFTNET_PX.get(bb.encoder, max(SWIFTNET_PX.values())) + SWIFTNET_DECODER_PX * bb.decoder_channels
    else:
        key = CSRNET_PX * bb.width
    non_key = FLOWNET_PX * config.flow.width + CONET_PX * config.correction.width
    px = INPUT_PX + max(key, non_key) + CLASS_PX * config.num_classes + (MAPS_PX if maps else 0.0)
    return px * dtype_bytes / 4


def padded_pixels(height: int, width: int, multiple: int = 32) -> int:
    return (height + (-height) % multiple) * (width + (-width) % multiple)


# ---- the buffers at the output size --------------------------------------------------------------

def pipeline_depth(height: int, width: int) -> int:
    """Frames decoded ahead and queued for the encoder: 4 up to 8 MB frames (1080p is 6 MB), 1 up
    to 64 MB and 0 (decode, segment and encode in turn, in one thread) beyond."""
    frame = 3 * height * width
    return 4 if frame <= 8 * MiB else 1 if frame <= 64 * MiB else 0


# ---- H.264 -------------------------------------------------------------------------------------

def h264_fits(height: int, width: int) -> bool:
    """Whether libx264 (through FFmpeg) encodes this (even-padded) frame size."""
    h, w = height + height % 2, width + width % 2
    return max(h, w) <= H264_MAX_SIDE and (w + 128) * (h + 128) < FFMPEG_MAX_PIXELS


def h264_size(height: int, width: int) -> tuple[int, int]:
    """The size, same aspect ratio, even sides, that libx264 encodes: (height, width) itself if it fits."""
    if h264_fits(height, width):
        return height, width
    s = min(H264_MAX_SIDE / max(height, width), math.sqrt(FFMPEG_MAX_PIXELS * 0.98) / math.sqrt(height * width))
    h, w = max(2, int(height * s) // 2 * 2), max(2, int(width * s) // 2 * 2)
    while not h264_fits(h, w):  # rounding: shave until it fits
        h, w = max(2, h - 2), max(2, w - 2)
    return h, w


# ---- the plan ----------------------------------------------------------------------------------

@dataclass(frozen=True)
class Buffers:
    """The memory that does not shrink when the model segments at a smaller size."""

    held: int  # alive through every step: runtime, weights, the decoded frames in flight
    writing: int  # alive while a frame is rendered and encoded
    overlapped: bool = True  # writing runs beside the model (a pipeline) rather than after it

    def total(self, model: float) -> int:
        return int(self.held + (model + self.writing if self.overlapped else max(model, self.writing)))


def segment_buffers(height: int, width: int, *, video_height: int, video_width: int, depth: int, weights: int,
                    labels: bool = False, maps: int = 0, map_video: tuple[int, int] | None = None) -> Buffers:
    """The full-size buffers of ``evss segment`` for outputs of ``height`` x ``width``, a video of
    ``video_height`` x ``video_width`` (twice as wide for ``--layout side``), ``maps`` distortion
    maps (as videos of ``map_video`` size when given)."""
    frames = 2 + (2 * depth + 3 if depth else 0)  # the current and the last good frame, plus the queues
    items = depth + 1 if depth else 0  # results queued for the encoder: labels and maps at the model's size or more
    held = BASELINE + weights + (3 * frames + 1.5 + items * (1 + 4 * maps)) * height * width  # + the decoder's YUV
    px = 1 + maps  # the upsampled labels and maps (uint8)
    px += 2 if labels else 0  # the label PNG's ids and the PNG encoder's copy
    writing = px * height * width + (3 + VIDEO_PX) * video_height * video_width  # + the rendered frame, the encoder
    if map_video is not None:
        writing += maps * (3 + VIDEO_PX) * map_video[0] * map_video[1]
    return Buffers(held=int(held), writing=int(writing), overlapped=depth > 0)


@dataclass(frozen=True)
class Plan:
    height: int  # the size the model segments at
    width: int
    out_height: int  # the size of the outputs (the input's, after --max-size)
    out_width: int
    estimate: int  # peak bytes at (height, width)
    full_estimate: int  # peak bytes at the output size
    buffers: Buffers  # the part that downscaling does not shrink
    budget: Budget

    @property
    def downscaled(self) -> bool:
        return (self.height, self.width) != (self.out_height, self.out_width)


def scaled_size(height: int, width: int, scale: float) -> tuple[int, int]:
    return max(1, int(height * scale)), max(1, int(width * scale))


def model_bytes(model_px: float, height: int, width: int) -> float:
    """The model's peak at this size, with the allocator's slack."""
    return SAFETY * model_px * padded_pixels(height, width)


def plan(*, height: int, width: int, model_px: float, buffers: Buffers, budget: Budget, allow_downscale: bool,
         what: str, remedy: str = "", frame: tuple[int, int] | None = None) -> Plan:
    """The size to segment a ``height`` x ``width`` input at under ``budget``.

    ``model_px`` is :func:`model_pixel_bytes`; ``buffers`` the bytes that do not depend on the
    processing size. Raises EvssError (naming ``what``, the size, the estimate and what to pass)
    when nothing fits, or when the input size does not fit and ``allow_downscale`` is False.
    ``frame`` (H, W): the frames' own size, where ``height`` x ``width`` is the smaller inference
    size they are segmented at (the errors name both).
    """
    def estimate(h: int, w: int) -> int:
        return buffers.total(model_bytes(model_px, h, w))

    full = estimate(height, width)
    if full <= budget.bytes:
        return Plan(height, width, height, width, full, full, buffers, budget)
    size = f"{width}x{height}"
    out = size if frame is None else f"{frame[1]}x{frame[0]}"
    subject = f"a {size} frame" if frame is None else f"a {out} frame at its inference size {size}"
    if not allow_downscale:
        raise EvssError(f"{what}: {subject} needs about {format_bytes(full)} (the model at {size}: "
                        f"{format_bytes(model_bytes(model_px, height, width))}), over the memory budget of "
                        f"{format_bytes(budget.bytes)} ({budget.source}); pass --max-memory {_round_up(full)} to "
                        f"allow it, or drop --no-downscale to segment at a smaller size with the outputs kept at {out}"
                        + remedy)
    h, w = height, width
    while max(h, w) >= MIN_SIDE and estimate(h, w) > budget.bytes:  # about 3% smaller a step
        h, w = scaled_size(height, width, (max(h, w) * 0.97 - 1) / max(height, width))
    if max(h, w) < MIN_SIDE:
        need = estimate(*scaled_size(height, width, MIN_SIDE / max(height, width)))
        raise EvssError(f"{what}: {subject} needs about {format_bytes(need)} even with the model at "
                        f"{MIN_SIDE} pixels: its full-size buffers (decoding, rendering, encoding) and the runtime "
                        f"leave no room for the model in the memory budget of {format_bytes(budget.bytes)} "
                        f"({budget.source}); pass --max-memory {_round_up(need)} or more" + remedy)
    return Plan(h, w, height, width, estimate(h, w), full, buffers, budget)


def _round_up(n: float) -> str:
    """A --max-memory value at or above ``n``: "3.2G", "1600M"."""
    if n >= GiB:
        return f"{math.ceil(n / GiB * 10) / 10:g}G"
    return f"{math.ceil(n / MiB / 100) * 100}M"


# ---- the plan of one `evss segment` run ---------------------------------------------------------

@dataclass(frozen=True)
class SegmentPlan:
    """The sizes one segmenting run works at, decided before its first frame."""

    plan: Plan  # the size the model segments at (out_height/out_width: the size asked for, see inference)
    video: tuple[int, int]  # (H, W) of the output video (twice as wide for the side-by-side layout)
    map_video: tuple[int, int]  # (H, W) of map videos
    depth: int  # frames decoded ahead and queued for the encoder (0: one thread, one frame at a time)
    # (H, W) the inference size asked the model to segment at, smaller than the frames (None: the frames'
    # own size); the memory plan starts from it and the outputs keep the frames' size
    inference: tuple[int, int] | None = None


def inference_shape(height: int, width: int, max_side: int | None) -> tuple[int, int] | None:
    """(H, W) with the longer side ``max_side``, same aspect ratio, for frames whose longer side is
    over it (the weights' ``inference_size``); None for frames that fit (or no ``max_side``)."""
    if max_side is None or max(height, width) <= max_side:
        return None
    return scaled_size(height, width, max_side / max(height, width))


def segment_plan(height: int, width: int, *, config: Any, device: Any, dtype_bytes: int, layout_factor: int = 1,
                 maps: int = 0, map_videos: bool = False, labels: bool = False, max_memory: str | None = None,
                 allow_downscale: bool = True, what: str = "input", max_side: int | None = None) -> SegmentPlan:
    """The sizes to segment and encode ``height`` x ``width`` frames at under the memory budget.

    ``layout_factor`` is 2 for a side-by-side video; ``maps`` counts the distortion maps written
    (as videos if ``map_videos``); ``labels`` says whether label PNGs are written. On a CUDA
    ``device`` the activations live on the GPU, so its free memory bounds the model's size too.
    ``max_side``: the longest side to segment at (the weights' inference size): larger frames are
    segmented downscaled to it, or smaller still where the budget asks; the outputs keep their size.
    """
    import torch  # here, not at the top: the plan's arithmetic above stays importable without torch

    video, map_video = h264_size(height, width * layout_factor), h264_size(height, width)
    depth = pipeline_depth(height, width)
    model_px = model_pixel_bytes(config, maps=maps > 0, dtype_bytes=dtype_bytes)
    weights = weights_bytes(config)
    buffers = segment_buffers(height, width, video_height=video[0], video_width=video[1], depth=depth,
                              weights=weights, labels=labels, maps=maps, map_video=map_video if map_videos else None)
    remedy = "; --max-size N makes every output smaller too"
    budget = resolve_budget(max_memory)
    on_host = device.type in ("cpu", "mps")  # MPS shares the host's memory
    inference = inference_shape(height, width, max_side)
    mh, mw = inference or (height, width)  # the size asked for: the model's buffers shrink with it, the outputs' not
    frame = None if inference is None else (height, width)
    chosen = plan(height=mh, width=mw, model_px=model_px if on_host else 4.0, buffers=buffers, budget=budget,
                  allow_downscale=allow_downscale, what=what, remedy=remedy, frame=frame)
    if device.type == "cuda":  # the activations live on the GPU: its free memory is the budget there
        free, _ = torch.cuda.mem_get_info(device)
        gpu = plan(height=mh, width=mw, model_px=model_px, buffers=Buffers(held=weights, writing=0),
                   budget=Budget(int(free * 0.9), f"90% of the free memory of {device}"),
                   allow_downscale=allow_downscale, what=what, remedy=remedy, frame=frame)
        if gpu.height * gpu.width < chosen.height * chosen.width:
            chosen = gpu
    return SegmentPlan(plan=chosen, video=video, map_video=map_video, depth=depth, inference=inference)
