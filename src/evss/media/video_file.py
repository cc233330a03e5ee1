"""A video file decoded by FFmpeg through PyAV, frame by frame, upright and in display order.

Damaged data costs the frames it holds, not the rest of the video: every frame the container
announces but the decoder does not give comes out as an :class:`~evss.media.reader.Undecoded`
placeholder at its place in time (see :meth:`PyAVReader._decoded`).
"""

from __future__ import annotations

import heapq
from fractions import Fraction
from typing import Iterator

import av

from evss.errors import EvssError
from evss.media.motion_vectors import MotionTracker, with_anchor_distances
from evss.media.reader import DEFAULT_FPS, Frame, Undecoded, VideoInfo, VideoReader, error_reason
from evss.media.resize import output_size, resize_image, rotate_image


class PyAVReader(VideoReader):
    """A video file decoded by FFmpeg through PyAV.

    Packets are decoded one by one, so a packet the decoder refuses costs one frame (a placeholder
    with ``on_error="skip"``, an EvssError naming the frame otherwise) instead of the rest of the
    video.
    """

    def __init__(self, source: str, *, max_size: int | None, motion_vectors: bool, on_error: str = "stop") -> None:
        self.source = source
        self.motion_vectors = motion_vectors
        self.on_error = on_error
        self._leading: list[Undecoded] = []  # refused packets before the first decoded frame
        try:
            self.container = av.open(source, mode="r")
        except (av.error.FFmpegError, UnicodeDecodeError, ValueError, OSError) as exc:
            raise EvssError(f"{source}: not a video FFmpeg can read ({error_reason(exc)}){_mp4_hint(source)}") from None
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
        """Decoded frames in display order, with a :class:`Undecoded` wherever the container holds a
        frame (a packet with its timestamp) that gave no picture.

        The decoder outputs pictures in timestamp order, so when a picture with timestamp P comes
        out, every packet timestamp below P that has not come out is lost: refused with an error,
        or silently dropped by a decoder that lost its footing in damaged data. Marking them keeps
        every later frame at its true position in time.
        """
        expected: list[int] = []  # heap of demuxed packet timestamps still without a picture
        refused: dict[int, str] = {}  # timestamp -> the decoder's error

        def lost_before(pts: int | None) -> Iterator[Undecoded]:
            while expected and (pts is None or expected[0] < pts):
                t = heapq.heappop(expected)
                if last and t <= last[0]:
                    continue  # a duplicate timestamp
                last[:] = [t]
                yield Undecoded(t, refused.pop(t, "no picture came out of the damaged data"))
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
                self.truncated = f"the file cannot be read past this point ({error_reason(exc)})"
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
                    yield Undecoded(None, error_reason(exc))
                else:
                    refused[int(packet.pts)] = error_reason(exc)
                continue
            yield from pictures(frames)
        yield from lost_before(None)  # packets at the end that never gave a picture

    def _peek(self):
        self._frames = self._decoded()
        for item in self._frames:
            if not isinstance(item, Undecoded):
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
        motion = MotionTracker(info) if self.motion_vectors else None
        i = -1
        last_pts = None
        for i, (f, mvs, dist) in enumerate(with_anchor_distances(decoded, self.motion_vectors)):
            if isinstance(f, Undecoded):
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
            img = resize_image(rotate_image(img, info.rotation), info.height, info.width)
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



def _upright_degrees(frame) -> int:
    """Counter-clockwise rotation (0/90/180/270) that shows the frame upright (display matrix)."""
    rot = getattr(frame, "rotation", 0) or 0
    return int(round(rot / 90.0)) * 90 % 360

