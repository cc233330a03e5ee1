"""Video in and out: video files through PyAV (FFmpeg), folders of frames and globs.

Reading streams one frame at a time, so memory does not grow with video length:

    with open_video("drive.mp4", max_size=1024) as video:
        print(video.info)
        for frame in video:           # Frame(index, image (H, W, 3) uint8 RGB, pts, motion)
            ...

Frames come out upright (the container's display rotation is applied), in display order, with
their presentation time stamps, so a writer can keep a variable frame rate as it was.

With ``motion_vectors=True`` the decoder exports the codec's block motion vectors
(``flags2=+export_mvs``) and each frame carries ``motion``: the backward flow of this frame to the
previous one, (2, ceil(H/4), ceil(W/4)) in pixels of the 1/4 grid, in the convention of
:mod:`evss.models.warp`, ready for :class:`evss.flow_sources.MVFlow`. See
:func:`evss.flow_sources.vectors_to_flow` for how vectors become a dense field.

Writing (:class:`VideoWriter`) encodes H.264 into mp4 (or any container FFmpeg writes). H.264 in
yuv420p, the pixel format every player reads, needs even sizes: odd frames are padded by one
replicated row/column; ``pix_fmt="yuv444p"`` keeps odd sizes exactly (fewer players read it).
"""

from __future__ import annotations

import math
import os
import queue
import re
import threading
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np

from evss.errors import EvssError
from evss.media.frames import IMAGE_SUFFIXES, VIDEO_SUFFIXES, frame_files as _frame_files

DEFAULT_FPS = Fraction(25)  # for folders of frames, which carry no rate


@dataclass(frozen=True)
class VideoInfo:
    source: str  # what was opened: a path, a folder or a glob pattern
    kind: str  # "video" | "frames"
    height: int  # of the frames as yielded (upright, after max_size)
    width: int
    source_height: int  # as stored (before rotation and max_size)
    source_width: int
    fps: Fraction  # the average frame rate
    frames: int | None  # frame count the container announces (an estimate for some files), None if unknown
    time_base: Fraction  # unit of Frame.pts
    rotation: int  # degrees counter-clockwise applied to make frames upright (0, 90, 180, 270)
    has_audio: bool = False
    codec: str = ""

    def describe(self) -> str:
        n = f"{self.frames} frames" if self.frames else "unknown frame count"
        size = f"{self.width}x{self.height}"
        if (self.source_width, self.source_height) != (self.width, self.height):
            size += f" (stored {self.source_width}x{self.source_height})"
        rot = f", rotated {self.rotation} deg" if self.rotation else ""
        codec = f" {self.codec}" if self.codec else ""
        return f"{self.source}:{codec} {size}, {float(self.fps):.3g} fps, {n}{rot}"


@dataclass
class Frame:
    index: int  # 0-based position in display order
    image: np.ndarray | None  # (H, W, 3) uint8 RGB, upright; None for an undecodable frame (on_error="skip")
    pts: int | None = None  # presentation time in VideoInfo.time_base units (None: unknown)
    motion: np.ndarray | None = None  # (2, ceil(H/4), ceil(W/4)) float32 backward flow to frame index-1
    motion_kind: str = "none"  # "vectors" | "previous" (no vectors: the last field reused) | "none"
    pict_type: str = ""  # "I" | "P" | "B" for decoded video
    error: str = ""  # why the frame could not be decoded (image is None), e.g. "Invalid data found ..."


def output_size(height: int, width: int, max_size: int | None) -> tuple[int, int]:
    """Scale (height, width) down so the longer side is at most ``max_size``; never up."""
    if not max_size or max(height, width) <= max_size:
        return height, width
    s = max_size / max(height, width)
    return max(1, round(height * s)), max(1, round(width * s))


ON_ERROR = ("stop", "skip")


def open_video(source: str | Path, *, max_size: int | None = None, motion_vectors: bool = False,
               fps: float | Fraction | None = None, on_error: str = "stop") -> "VideoReader":
    """Open a video file, a folder of frames or a glob of frames for streaming.

    ``max_size`` downscales frames so their longer side fits; ``fps`` sets the rate of a frame
    folder (default 25) and is ignored for video files, which carry their own timing.

    ``on_error`` decides what an undecodable frame in the middle does: ``"stop"`` raises an
    EvssError naming the frame; ``"skip"`` yields it as a :class:`Frame` whose ``image`` is None
    and whose ``error`` says why, and keeps decoding (the frame count is kept). For codecs with
    B-frames the placeholder sits where the decoder reported the error, which can be a few frames
    from its display position. A stream that ends early (a truncated file) is not an error:
    ``reader.truncated`` then says what was announced and what came.
    """
    if on_error not in ON_ERROR:
        raise EvssError(f"on_error {on_error!r} is not one of {ON_ERROR}")
    source = str(source)
    files = _frame_files(source)
    if files is not None:
        if motion_vectors:
            raise EvssError(f"{source}: motion vectors come from a compressed video; a folder of frames has none "
                            "(use --flow learned or dis)")
        return FrameFolderReader(source, files, max_size=max_size, fps=Fraction(fps) if fps else DEFAULT_FPS,
                                 on_error=on_error)
    p = Path(source)
    if not p.exists():
        raise EvssError(f"{source}: no such file, folder or matching glob")
    if p.is_dir():
        raise EvssError(f"{source}: a folder without image files ({', '.join(IMAGE_SUFFIXES)})")
    if p.is_file() and p.stat().st_size == 0:
        raise EvssError(f"{source}: the file is empty (0 bytes)")
    return PyAVReader(source, max_size=max_size, motion_vectors=motion_vectors, on_error=on_error)


class VideoReader:
    """Base: a context manager and an iterator of :class:`Frame`; ``info`` describes the stream.

    ``truncated`` is set (a sentence) once iteration finds the stream shorter than announced.
    """

    info: VideoInfo
    truncated: str | None = None

    def __enter__(self) -> "VideoReader":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        pass

    def __iter__(self) -> Iterator[Frame]:
        raise NotImplementedError


class FrameFolderReader(VideoReader):
    def __init__(self, source: str, files: list[Path], *, max_size: int | None, fps: Fraction,
                 on_error: str = "stop") -> None:
        self.files = files
        self.on_error = on_error
        first = None
        for path in files:  # with on_error="skip" the size comes from the first readable frame
            try:
                first = self._read(path)
                break
            except EvssError:
                if on_error == "stop":
                    raise
        if first is None:
            raise EvssError(f"{source}: none of its {len(files)} image files is readable")
        h0, w0 = first.shape[:2]
        h, w = output_size(h0, w0, max_size)
        self.info = VideoInfo(source=source, kind="frames", height=h, width=w, source_height=h0, source_width=w0,
                              fps=fps, frames=len(files), time_base=1 / fps, rotation=0, codec="images")

    @staticmethod
    def _read(path: Path) -> np.ndarray:
        """uint8 RGB (H, W, 3): greyscale and palette files are expanded, alpha dropped, 16 bits cut to 8."""
        import cv2
        try:
            img = cv2.imread(str(path), cv2.IMREAD_COLOR)
        except cv2.error as exc:
            raise EvssError(f"{path}: not a readable image ({' '.join(str(exc).split())})") from None
        if img is None:
            raise EvssError(f"{path}: not a readable image{_too_large_hint(path)}")
        return cv2.cvtColor(img, cv2.COLOR_BGR2RGB, dst=img)  # in place: no second full-size copy

    def __iter__(self) -> Iterator[Frame]:
        info = self.info
        for i, path in enumerate(self.files):
            try:
                img = self._read(path)
            except EvssError as exc:
                if self.on_error == "stop":
                    raise EvssError(f"{exc} (frame {i} of {info.source}; --on-error skip keeps going)") from None
                yield Frame(index=i, image=None, pts=i, error=str(exc))
                continue
            if img.shape[:2] != (info.source_height, info.source_width):
                raise EvssError(f"{path}: frame {i} is {img.shape[1]}x{img.shape[0]}, the sequence started at "
                                f"{info.source_width}x{info.source_height} ({self.files[0].name})")
            yield Frame(index=i, image=_resize(img, info.height, info.width), pts=i)


OPENCV_MAX_PIXELS = 1 << 30  # cv2.imread refuses larger images (CV_IO_MAX_IMAGE_PIXELS)


def _too_large_hint(path: Path) -> str:
    """Why OpenCV refused a readable image: its header's size is over OpenCV's pixel limit."""
    import warnings

    from PIL import Image
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with Image.open(path) as im:
                w, h = im.size
    except Image.DecompressionBombError:
        return f" (over {OPENCV_MAX_PIXELS // 10 ** 6} Mpx, more than OpenCV decodes; split or downscale it first)"
    except Exception:  # noqa: BLE001 - any failure here means the header is unreadable too
        return ""
    if w * h > OPENCV_MAX_PIXELS:
        return (f" (a {w}x{h} image, {w * h // 10 ** 6} Mpx, over the {OPENCV_MAX_PIXELS // 10 ** 6} Mpx OpenCV "
                "decodes; split or downscale it first)")
    return ""


def _resize(img: np.ndarray, h: int, w: int) -> np.ndarray:
    if img.shape[:2] == (h, w):
        return img
    import cv2
    return cv2.resize(img, (w, h), interpolation=cv2.INTER_AREA)


def resize_image(img: np.ndarray, height: int, width: int) -> np.ndarray:
    """An (H, W, 3) uint8 frame at (height, width): area averaging down, bilinear up."""
    if img.shape[:2] == (height, width):
        return img
    import cv2
    up = height * width > img.shape[0] * img.shape[1]
    return cv2.resize(img, (width, height), interpolation=cv2.INTER_LINEAR if up else cv2.INTER_AREA)


def resize_labels(labels: np.ndarray, height: int, width: int) -> np.ndarray:
    """(h, w) uint8 class ids at (height, width), nearest neighbour (ids are not averaged)."""
    if labels.shape[:2] == (height, width):
        return labels
    import cv2
    return cv2.resize(labels, (width, height), interpolation=cv2.INTER_NEAREST)


def resize_map(m: np.ndarray, height: int, width: int) -> np.ndarray:
    """An (h, w) map in [0, 1] as uint8 grey at (height, width), bilinear (quantised first: 1 byte a pixel)."""
    import cv2
    g = m if m.dtype == np.uint8 else (np.clip(m, 0, 1) * 255 + 0.5).astype(np.uint8)
    return g if g.shape[:2] == (height, width) else cv2.resize(g, (width, height), interpolation=cv2.INTER_LINEAR)


def _rotate_image(img: np.ndarray, degrees: int) -> np.ndarray:
    """Rotate counter-clockwise by a multiple of 90 degrees."""
    k = (degrees // 90) % 4
    return np.ascontiguousarray(np.rot90(img, k)) if k else img


def rotate_flow(flow: np.ndarray, degrees: int) -> np.ndarray:
    """Rotate a (2, H, W) flow field counter-clockwise by a multiple of 90 degrees, like its frame.

    ``np.rot90`` maps old pixel (x, y) to (y, W-1-x), so a displacement (dx, dy) becomes (dy, -dx).
    """
    out = flow
    for _ in range((degrees // 90) % 4):
        dx, dy = out[0], out[1]
        out = np.stack([np.rot90(dy), -np.rot90(dx)])  # (2, W, H)
    return np.ascontiguousarray(out)


def resize_flow(flow: np.ndarray, height: int, width: int) -> np.ndarray:
    """Resample a (2, h, w) flow field to (2, height, width) grid cells, scaling the vectors too."""
    _, h, w = flow.shape
    if (h, w) == (height, width):
        return flow
    import cv2
    out = np.stack([cv2.resize(c, (width, height), interpolation=cv2.INTER_LINEAR) for c in flow])
    out[0] *= width / w
    out[1] *= height / h
    return out.astype(np.float32)


class _Bad:
    """A packet the decoder refused: where a frame should have been (``pts``) and why."""

    def __init__(self, pts: int | None, reason: str) -> None:
        self.pts, self.reason = pts, reason


class PyAVReader(VideoReader):
    """A video file decoded by FFmpeg through PyAV.

    Packets are decoded one by one, so a packet the decoder refuses costs one frame (a placeholder
    with ``on_error="skip"``, an EvssError naming the frame otherwise) instead of the rest of the
    video.
    """

    def __init__(self, source: str, *, max_size: int | None, motion_vectors: bool, on_error: str = "stop") -> None:
        import av
        self.source = source
        self.motion_vectors = motion_vectors
        self.on_error = on_error
        self._leading: list[_Bad] = []  # refused packets before the first decoded frame
        try:
            self.container = av.open(source, mode="r")
        except (av.error.FFmpegError, UnicodeDecodeError, ValueError, OSError) as exc:
            raise EvssError(f"{source}: not a video FFmpeg can read ({_reason(exc)}){_mp4_hint(source)}") from None
        try:
            self._setup(max_size)
        except BaseException:
            self.container.close()
            raise

    def _setup(self, max_size: int | None) -> None:
        source = self.source
        if not self.container.streams.video:
            raise EvssError(f"{source}: no video stream (streams: "
                            f"{', '.join(s.type for s in self.container.streams) or 'none'})")
        self.stream = stream = self.container.streams.video[0]
        cc = stream.codec_context
        if self.motion_vectors:
            # The decoder attaches AV_FRAME_DATA_MOTION_VECTORS side data (H.264, MPEG-2/4, H.263).
            cc.options = {"flags2": "+export_mvs"}
        else:
            stream.thread_type = "AUTO"  # frame threads: faster, and no side data is needed
        self._first = self._peek()
        rotation = _upright_degrees(self._first)
        h0, w0 = self._first.height, self._first.width
        if h0 < 1 or w0 < 1:
            raise EvssError(f"{source}: the video's frames are {w0}x{h0}")
        hr, wr = (w0, h0) if rotation in (90, 270) else (h0, w0)
        h, w = output_size(hr, wr, max_size)
        rate = stream.average_rate or stream.guessed_rate or stream.base_rate or DEFAULT_FPS
        if not rate > 0:
            rate = DEFAULT_FPS
        frames = stream.frames or None
        if frames is None and stream.duration and stream.time_base:
            frames = max(1, round(float(stream.duration * stream.time_base * rate)))
        self.info = VideoInfo(source=source, kind="video", height=h, width=w, source_height=h0, source_width=w0,
                              fps=Fraction(rate), frames=frames, time_base=Fraction(stream.time_base or 1 / rate),
                              rotation=rotation,
                              has_audio=any(s.type == "audio" for s in self.container.streams),
                              codec=cc.name or "")

    def _decoded(self) -> Iterator:
        """Decoded frames in display order, with a :class:`_Bad` wherever the container holds a
        frame (a packet with its timestamp) that gave no picture.

        The decoder outputs pictures in timestamp order, so when a picture with timestamp P comes
        out, every packet timestamp below P that has not come out is lost: refused with an error,
        or silently dropped by a decoder that lost its footing in damaged data. Marking them keeps
        every later frame at its true position in time.
        """
        import heapq

        import av
        expected: list[int] = []  # heap of demuxed packet timestamps still without a picture
        refused: dict[int, str] = {}  # timestamp -> the decoder's error

        def lost_before(pts: int | None) -> Iterator[_Bad]:
            while expected and (pts is None or expected[0] < pts):
                t = heapq.heappop(expected)
                if last and t <= last[0]:
                    continue  # a duplicate timestamp
                last[:] = [t]
                yield _Bad(t, refused.pop(t, "no picture came out of the damaged data"))
            if pts is not None and expected and expected[0] == pts:
                heapq.heappop(expected)

        last: list[int] = []  # the latest timestamp handed on

        def pictures(frames) -> Iterator:
            for f in frames:
                if f.pts is not None:
                    if last and f.pts <= last[0]:
                        continue  # a late picture for a time already marked lost: keep the timeline
                    yield from lost_before(f.pts)
                    last[:] = [f.pts]
                yield f

        packets = self.container.demux(self.stream)
        while True:
            try:
                packet = next(packets)
            except StopIteration:
                break
            except (av.error.FFmpegError, ValueError, OSError) as exc:
                # The container itself cannot be read on: the rest of the file is lost either way,
                # but the frames the decoder still holds are not.
                self.truncated = f"the file cannot be read past this point ({_reason(exc)})"
                try:
                    yield from pictures(self.stream.codec_context.decode(None))
                except (av.error.FFmpegError, ValueError):
                    pass
                break
            if packet.pts is not None and packet.size:
                heapq.heappush(expected, int(packet.pts))
            try:
                frames = packet.decode()
            except (av.error.FFmpegError, ValueError) as exc:
                if packet.pts is None:
                    yield _Bad(None, _reason(exc))
                else:
                    refused[int(packet.pts)] = _reason(exc)
                continue
            yield from pictures(frames)
        yield from lost_before(None)  # packets at the end that never gave a picture

    def _peek(self):
        self._frames = self._decoded()
        for item in self._frames:
            if not isinstance(item, _Bad):
                return item
            if self.on_error == "stop":
                raise EvssError(f"{self.source}: frame 0 cannot be decoded ({item.reason}); "
                                "--on-error skip keeps going")
            self._leading.append(item)
        if self._leading:
            raise EvssError(f"{self.source}: none of its {len(self._leading)} frames can be decoded "
                            f"({self._leading[0].reason})")
        raise EvssError(f"{self.source}: the video stream holds no frames{_mp4_hint(self.source)}")

    def close(self) -> None:
        self.container.close()

    def __iter__(self) -> Iterator[Frame]:
        if self._first is None:
            raise EvssError(f"{self.source}: a PyAVReader can be iterated once")
        first, self._first = self._first, None
        decoded = _chain(self._leading, first, self._frames)
        info = self.info
        motion = _MotionTracker(info) if self.motion_vectors else None
        i = -1
        last_pts = None
        for i, (f, mvs, dist) in enumerate(_with_anchor_distances(decoded, self.motion_vectors)):
            if isinstance(f, _Bad):
                if self.on_error == "stop":
                    when = f" at {float((f.pts - (self.stream.start_time or 0)) * info.time_base):.2f} s" \
                        if f.pts is not None else ""
                    raise EvssError(f"{self.source}: frame {i}{when} cannot be decoded ({f.reason}); "
                                    "--on-error skip keeps going")
                yield Frame(index=i, image=None, pts=f.pts, error=f.reason)
                continue
            img = f.to_ndarray(format="rgb24")  # (h0, w0, 3)
            if img.shape[:2] != (info.source_height, info.source_width):
                raise EvssError(f"{self.source}: frame {i} is {img.shape[1]}x{img.shape[0]}, the stream started at "
                                f"{info.source_width}x{info.source_height}; size changes are not supported")
            img = _resize(_rotate_image(img, info.rotation), info.height, info.width)
            frame = Frame(index=i, image=img, pts=f.pts, pict_type=_PICT.get(int(f.pict_type), ""))
            if f.pts is not None:
                last_pts = f.pts
            if motion is not None:
                frame.motion, frame.motion_kind = motion.update(mvs, *dist)
            yield frame
        self._check_length(i + 1, last_pts)

    def _check_length(self, count: int, last_pts: int | None) -> None:
        """Set ``truncated`` when the stream ended well before what the container announced."""
        info = self.info
        if self.truncated is not None:
            self.truncated = f"{self.truncated}; {count} frames were read"
            return
        if info.frames and count < info.frames - 1 and self.stream.frames:  # an exact count (mp4 index)
            self.truncated = f"the stream ended after {count} of its {info.frames} announced frames"
            return
        # microseconds (AV_TIME_BASE), None when unknown; with other streams it is the longest one's
        duration = self.container.duration if len(self.container.streams) == 1 else None
        if duration and last_pts is not None:
            start = self.stream.start_time or 0
            seen = float((last_pts - start) * info.time_base) + 1 / float(info.fps)
            if seen < duration / 1e6 - 2 / float(info.fps):
                self.truncated = (f"the stream ended at {seen:.2f} s of its announced {duration / 1e6:.2f} s "
                                  f"after {count} frames")


def _mp4_hint(source: str) -> str:
    """Why an MP4/MOV file may not open: its index (``moov``) is missing, as in an unfinished recording."""
    try:
        with open(source, "rb") as f:
            head = f.read(12)
            if len(head) < 8 or head[4:8] != b"ftyp":
                return ""
            f.seek(0, 2)
            size = f.tell()
            pos, boxes = 0, []
            while pos + 8 <= size and len(boxes) < 64:
                f.seek(pos)
                h = f.read(16)
                n, kind = int.from_bytes(h[:4], "big"), h[4:8]
                if n == 1 and len(h) >= 16:
                    n = int.from_bytes(h[8:16], "big")
                boxes.append(kind)
                if n < 8:
                    break
                pos += n
    except OSError:
        return ""
    if b"moov" in boxes:
        return ""
    return ("; it is an MP4/MOV file without its index (moov box): truncated, or a recording that was "
            "never finished")


_PICT = {1: "I", 2: "P", 3: "B"}


def _chain(leading: list, first, rest: Iterator) -> Iterator:
    yield from leading
    yield first
    yield from rest


def _reason(exc: Exception) -> str:
    return str(getattr(exc, "strerror", None) or exc).strip() or type(exc).__name__


def _upright_degrees(frame) -> int:
    """Counter-clockwise rotation (0/90/180/270) that shows the frame upright (display matrix)."""
    rot = getattr(frame, "rotation", 0) or 0
    return int(round(rot / 90.0)) * 90 % 360


def _with_anchor_distances(frames: Iterator, with_vectors: bool) -> Iterator:
    """Yield (frame, vectors, (past_distance, future_distance)) in display order.

    A P frame's vectors point to the previous anchor (I or P) frame, a B frame's to the anchors
    on either side; FFmpeg exports only the direction. To scale vectors to one frame step, B frames
    wait here until the next anchor is decoded (a bounded look-ahead: the encoder's B-frame run).
    """
    if not with_vectors:
        for f in frames:
            yield f, None, (1, None)
        return
    last_anchor: int | None = None
    held: list = []  # B frames waiting for the next anchor: (index, frame, vectors)
    for i, f in enumerate(frames):
        if isinstance(f, _Bad):  # no picture, no vectors: the frames after it start a new chain
            for j, fb, mb in held:
                yield fb, mb, (j - last_anchor if last_anchor is not None else 1, None)
            held.clear()
            yield f, None, (1, None)
            last_anchor = None
            continue
        sd = f.side_data.get("MOTION_VECTORS")
        mvs = sd.to_ndarray() if sd is not None and len(sd) else None
        if int(f.pict_type) == 3:  # B
            held.append((i, f, mvs))
            continue
        for j, fb, mb in held:
            yield fb, mb, (j - last_anchor if last_anchor is not None else 1, i - j)
        held.clear()
        yield f, mvs, (i - last_anchor if last_anchor is not None else 1, None)
        last_anchor = i
    for j, fb, mb in held:  # a stream that ends on B frames
        yield fb, mb, (j - last_anchor if last_anchor is not None else 1, None)


class _MotionTracker:
    """Turns each frame's motion vectors into the upright, resized backward flow to the previous frame."""

    def __init__(self, info: VideoInfo) -> None:
        self.info = info
        self.grid = (math.ceil(info.source_height / 4), math.ceil(info.source_width / 4))
        self.previous: np.ndarray | None = None  # on the source 1/4 grid

    def update(self, vectors: np.ndarray | None, past: int, future: int | None) -> tuple[np.ndarray, str]:
        from evss.flow_sources import b_frame_distances, vectors_to_flow
        info = self.info
        if vectors is None:
            # An I frame (or a codec that exports nothing): keep the last motion, a constant-velocity guess.
            kind = "previous" if self.previous is not None else "none"
            flow = self.previous if self.previous is not None else np.zeros((2, *self.grid), np.float32)
        else:
            past, future = b_frame_distances(vectors, past, future)
            flow = vectors_to_flow(vectors, info.source_height, info.source_width, past_distance=past,
                                   future_distance=future, fill=self.previous)
            kind = "vectors"
            self.previous = flow
        out = rotate_flow(flow, info.rotation)
        out = resize_flow(out, math.ceil(info.height / 4), math.ceil(info.width / 4))
        return out, kind


def prefetch(items: Iterable, depth: int = 4) -> Iterator:
    """Produce ``items`` in a background thread, at most ``depth`` ahead of the consumer.

    Decoding overlaps with the model this way while memory stays bounded. Exceptions in the
    producer are re-raised in the consumer; closing the generator stops the producer.
    ``depth=0`` produces in the consumer's thread, one item at a time (huge frames).
    """
    if depth <= 0:
        yield from items
        return
    q: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()
    done = object()

    def produce() -> None:
        try:
            for item in items:
                while not stop.is_set():
                    try:
                        q.put((None, item), timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            q.put((None, done))
        except BaseException as exc:  # handed to the consumer
            q.put((exc, None))

    thread = threading.Thread(target=produce, name="evss-decode", daemon=True)
    thread.start()
    try:
        while True:
            exc, item = q.get()
            if exc is not None:
                raise exc
            if item is done:
                return
            yield item
    finally:
        stop.set()
        while thread.is_alive():
            try:  # unblock a producer waiting on a full queue
                q.get_nowait()
            except queue.Empty:
                pass
            thread.join(timeout=0.05)


class BackgroundWriter:
    """Run ``write(item)`` for each ``put(item)`` in one background thread, in order, at most
    ``depth`` items behind: encoding overlaps with the model while memory stays bounded.

    An exception raised by ``write`` is re-raised in the caller by the next ``put`` or by
    ``close``; after it, the remaining items are dropped. ``close`` waits for the queue to drain.
    ``depth=0`` writes in the caller's thread inside ``put`` (huge frames: nothing queued).
    """

    def __init__(self, write, depth: int = 4) -> None:
        self._write = write
        self._q: queue.Queue = queue.Queue(maxsize=max(depth, 1))
        self._error: BaseException | None = None
        self._done = object()
        self._thread = threading.Thread(target=self._run, name="evss-encode", daemon=True)
        self._inline = depth <= 0
        if not self._inline:
            self._thread.start()

    def _run(self) -> None:
        while True:
            item = self._q.get()
            if item is self._done:
                return
            if self._error is None:
                try:
                    self._write(item)
                except BaseException as exc:  # handed to the caller
                    self._error = exc

    def _raise(self) -> None:
        if self._error is not None:
            error, self._error = self._error, None
            raise error

    def put(self, item) -> None:
        self._raise()
        if self._inline:
            self._write(item)
            return
        self._q.put(item)

    def close(self) -> None:
        """Wait until every item is written; re-raise the first error of the writer."""
        if self._thread.is_alive():
            self._q.put(self._done)
            self._thread.join()
        self._raise()


# ---- writing ---------------------------------------------------------------------------------

@dataclass
class VideoWriter:
    """Encode RGB frames into a video file (H.264 in mp4 by default).

    ``time_base`` and per-frame ``pts`` keep the input's timing (variable frame rate included);
    without them frames are spaced 1/fps apart. Frames are padded to even sizes for yuv420p.
    """

    path: Path
    fps: Fraction
    height: int
    width: int
    time_base: Fraction | None = None
    pix_fmt: str = "yuv420p"
    codec: str = "libx264"
    crf: int = 20
    format: str | None = None  # container format; default from the file suffix, mp4 without one
    options: dict[str, str] | None = None  # extra encoder options, e.g. {"x264-params": "bframes=0"}
    frames_written: int = field(default=0, init=False)

    def __post_init__(self) -> None:
        import av

        from evss.memory import H264_MAX_SIDE, h264_fits, h264_size
        self.path = Path(self.path)
        fmt = self.format or (None if self.path.suffix.lower() in VIDEO_SUFFIXES else "mp4")
        sub = self.pix_fmt == "yuv420p"
        self.coded_height = self.height + (self.height % 2 if sub else 0)
        self.coded_width = self.width + (self.width % 2 if sub else 0)
        if self.codec == "libx264" and not h264_fits(self.coded_height, self.coded_width):
            h, w = h264_size(self.height, self.width)
            raise EvssError(f"{self.path}: H.264 cannot encode {self.width}x{self.height} frames (libx264 takes at "
                            f"most {H264_MAX_SIDE} pixels a side and about 268 Mpx); {w}x{h} would fit")
        try:
            self.container = av.open(str(self.path), mode="w", format=fmt)
        except av.error.FFmpegError as exc:
            raise EvssError(f"{self.path}: cannot write a video here ({_reason(exc)})") from None
        rate = Fraction(self.fps).limit_denominator(1_000_000)
        stream = self.container.add_stream(self.codec, rate=rate)
        stream.width, stream.height, stream.pix_fmt = self.coded_width, self.coded_height, self.pix_fmt
        self.tb = Fraction(self.time_base) if self.time_base else 1 / rate
        stream.time_base = self.tb
        stream.codec_context.time_base = self.tb
        if self.codec == "libx264":
            stream.options = {"crf": str(self.crf), "preset": "veryfast", **(self.options or {})}
        elif self.options:
            stream.options = dict(self.options)
        self.stream = stream
        self._last_pts: int | None = None
        self._step = max(1, round(1 / (rate * self.tb)))  # one frame period in time_base units

    def write(self, image: np.ndarray, pts: int | None = None) -> None:
        """Append one (height, width, 3) uint8 RGB frame shown at ``pts`` (time_base units)."""
        import av
        if image.shape != (self.height, self.width, 3):
            raise EvssError(f"{self.path}: frame {self.frames_written} is {image.shape}, the video is "
                            f"({self.height}, {self.width}, 3)")
        if (self.coded_height, self.coded_width) != (self.height, self.width):
            image = np.pad(image, ((0, self.coded_height - self.height), (0, self.coded_width - self.width), (0, 0)),
                           mode="edge")
        # Presentation times must rise strictly; missing or repeated ones continue the frame period.
        if pts is None or (self._last_pts is not None and pts <= self._last_pts):
            pts = 0 if self._last_pts is None else self._last_pts + self._step
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="rgb24")
        frame.pts, frame.time_base = pts, self.tb
        self._last_pts = pts
        try:
            for packet in self.stream.encode(frame):
                self.container.mux(packet)
        except av.error.FFmpegError as exc:
            if isinstance(exc, OSError):  # a full disk, no permission ...: handled as such by the callers
                raise
            raise EvssError(f"{self.path}: the {self.codec} encoder refused frame {self.frames_written} of "
                            f"{self.width}x{self.height} ({_reason(exc)})") from None
        self.frames_written += 1

    def close(self) -> None:
        """Flush the encoder and finish the file (playable afterwards)."""
        if self.container is None:
            return
        try:
            for packet in self.stream.encode(None):
                self.container.mux(packet)
        finally:
            self.container.close()
            self.container = None

    def __enter__(self) -> "VideoWriter":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def partial_path(path: Path) -> Path:
    """Where an output is written before it is complete: a hidden sibling with the same suffix."""
    return path.with_name(f".{path.stem}.partial{path.suffix or '.mp4'}")


class PartialFolder:
    """An output folder that appears under its final name only when complete.

    Files go into a hidden sibling ``.NAME.partial``; :meth:`commit` renames it to ``NAME``
    (replacing an earlier output there), :meth:`discard` deletes it. After a crash there is a
    ``.NAME.partial`` folder and no ``NAME``, so nothing that looks complete is left behind; the
    next run clears the stale partial folder.

    ``owned(path)`` says whether an entry of an existing ``NAME`` is an output this kind of
    folder holds: a folder with anything else is refused before any work starts, so a user's own
    files are never replaced.
    """

    def __init__(self, final: Path, *, owned, what: str) -> None:
        import shutil
        self.final, self.what = Path(final), what
        if not self.final.name:  # "." or "/": name the folder itself
            self.final = self.final.resolve()
        if self.final.exists():
            if not self.final.is_dir():
                raise EvssError(f"{what} {self.final}: exists and is not a folder")
            foreign = sorted(p.name for p in self.final.iterdir() if not owned(p))
            if foreign:
                raise EvssError(f"{what} {self.final}: the folder holds {foreign[0]!r}"
                                + (f" and {len(foreign) - 1} more entries" if len(foreign) > 1 else "")
                                + " that evss did not write; choose an empty or new folder")
        self.path = self.final.with_name(f".{self.final.name}.partial")
        if self.path.is_symlink() or self.path.is_file():
            self.path.unlink()
        elif self.path.exists():
            shutil.rmtree(self.path)  # a stale partial folder of an interrupted run: ours by its name
        self.path.mkdir(parents=True)

    def commit(self) -> Path:
        """Rename the partial folder to its final name (an earlier output there is replaced)."""
        import shutil
        try:
            if self.final.exists():
                old = self.final.with_name(f".{self.final.name}.old")
                if old.exists():
                    shutil.rmtree(old)
                os.rename(self.final, old)
                os.rename(self.path, self.final)
                shutil.rmtree(old, ignore_errors=True)
            else:
                os.rename(self.path, self.final)
        except OSError as exc:
            raise EvssError(f"{self.what} {self.final}: cannot move the finished folder {self.path} into place "
                            f"({exc.strerror or exc})") from None
        return self.final

    def discard(self) -> None:
        import shutil
        shutil.rmtree(self.path, ignore_errors=True)


_NUMBERED_PNG = re.compile(r"\d{6}\.png")


def numbered_pngs(path: Path) -> bool:
    """``owned`` for :class:`PartialFolder`: frame-numbered PNGs (000000.png, ...), as evss writes them."""
    return path.is_file() and not path.is_symlink() and _NUMBERED_PNG.fullmatch(path.name) is not None


def write_label_png(path: Path, labels: np.ndarray, palette: Iterable[tuple[int, int, int]]) -> None:
    """(H, W) uint8 class ids -> an 8-bit palette PNG: pixel values are the ids, colours the palette."""
    from PIL import Image
    img = Image.fromarray(np.ascontiguousarray(labels.astype(np.uint8, copy=False)), mode="P")
    flat = [c for rgb in palette for c in rgb]
    img.putpalette(flat + [0] * (768 - len(flat)))
    img.save(path, optimize=False, compress_level=1)


def write_gray_png(path: Path, m: np.ndarray) -> None:
    """(H, W) float map in [0, 1] (or already quantised: uint8 0-255) -> 8-bit greyscale PNG."""
    from PIL import Image
    g = m if m.dtype == np.uint8 else (np.clip(m, 0, 1) * 255 + 0.5).astype(np.uint8)
    Image.fromarray(np.ascontiguousarray(g), mode="L").save(path, compress_level=1)


def read_video_frames(path: str | Path) -> tuple[np.ndarray, VideoInfo]:
    """Decode a whole (short) video into (T, H, W, 3) uint8: for tests and small clips."""
    with open_video(path) as v:
        frames = [f.image for f in v]
        return np.stack(frames), v.info


def write_video_frames(path: str | Path, frames: np.ndarray | Iterable[np.ndarray], *, fps: float | Fraction = 25,
                       **kwargs) -> Path:
    """Encode RGB frames (T, H, W, 3) uint8 into ``path``: for tests and small clips."""
    frames = iter(frames)
    first = next(frames)
    w = VideoWriter(Path(path), Fraction(fps).limit_denominator(1_000_000), first.shape[0], first.shape[1], **kwargs)
    with w:
        w.write(first)
        for f in frames:
            w.write(f)
    return Path(path)
