"""What a segmenting run reports at its end: the notes on what it met, and its summary."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from evss.errors import EvssError
from evss.pipeline.options import OutputOptions
from evss.pipeline.outputs import maps_as_video
from evss.pipeline.progress import Progress, frame_list, spans
from evss.pipeline.session import Notice


@dataclass(frozen=True)
class SegmentReport:
    """The summary of one :func:`evss.segment_video` run."""

    output: Path
    frames: int  # frames segmented (undecodable ones not counted)
    written: int  # frames in the output video (the input's count, unless interrupted)
    keyframes: int
    redone_keyframes: int  # non-keyframes the adaptive policy re-segmented as keyframes
    ms_per_keyframe: float | None
    ms_per_non_keyframe: float | None
    model_fps: float | None  # frames per second in the networks alone
    overall_fps: float | None  # frames per second of the whole run (decode, segment, encode)
    seconds: float
    undecodable: tuple[int, ...] = ()  # frames skipped as damaged (their outputs repeat the last good one)
    interrupted: bool = False  # Ctrl-C stopped the run: the outputs hold the frames done so far
    map_files: tuple[Path, ...] = ()  # map videos written (save_maps ending in .mp4)
    labels: Path | None = None  # the label folder, where written
    maps: Path | None = field(default=None)  # the map folder, where written as PNGs

    def lines(self, *, adaptive: bool = False) -> list[str]:
        """The closing summary `evss segment` prints."""
        def fmt(v: float | None, spec: str = ".1f") -> str:
            return "n/a" if v is None else format(v, spec)

        bad = len(self.undecodable)
        first = (f"{self.frames} frames, {self.keyframes} keyframes"
                 + (f" ({self.redone_keyframes} started by the adaptive policy)" if adaptive else "")
                 + (f", {bad} undecodable frame{'s' if bad > 1 else ''} repeated" if bad else "")
                 + f"; {fmt(self.ms_per_keyframe)} ms per keyframe, {fmt(self.ms_per_non_keyframe)} ms per "
                 f"non-keyframe; {fmt(self.overall_fps)} frames/s overall ({fmt(self.model_fps)} in the model)")
        second = (f"wrote {self.output}" + "".join(f", {p}" for p in self.map_files)
                  + (f", labels in {self.labels}" if self.labels else "")
                  + (f", maps in {self.maps}" if self.maps else ""))
        return [first, second]


def report(progress: Progress, reader: Any, source: Any, out: Path, *, written: int, wall: float,
           frames_announced: int | None, map_files: list[Path], outputs: OutputOptions,
           notice: Notice) -> SegmentReport:
    """The notes (interrupted, damaged, truncated, no vectors) to ``notice``, and the summary.
    Raises when no frame at all was segmented."""
    _notes(progress, reader, source, out, written=written, frames_announced=frames_announced, notice=notice)
    if not written:
        raise EvssError(f"{source}: no frames were segmented")
    s = progress.summary(wall)
    maps_folder = outputs.save_maps if outputs.save_maps and not maps_as_video(outputs.save_maps) else None
    return SegmentReport(output=out, frames=s["frames"], written=written, keyframes=s["keyframes"],
                         redone_keyframes=s["redone_keyframes"], ms_per_keyframe=s["ms_per_keyframe"],
                         ms_per_non_keyframe=s["ms_per_non_keyframe"], model_fps=s["model_fps"],
                         overall_fps=s["overall_fps"], seconds=wall, undecodable=tuple(progress.bad),
                         interrupted=progress.interrupted, map_files=tuple(map_files), labels=outputs.save_labels,
                         maps=maps_folder)


def _notes(progress: Progress, reader: Any, source: Any, out: Path, *, written: int, frames_announced: int | None,
           notice: Notice) -> None:
    bad = progress.bad
    if progress.interrupted:
        notice(f"interrupted: wrote a playable {out} with the {written} frames done so far"
               + (f" of {frames_announced}" if frames_announced else ""))
    if bad:
        where = "damaged in the middle" if bad[-1] < written - 1 else "damaged at the end"
        secs = progress.bad_seconds
        lo, hi = (min(secs), max(secs)) if secs else (0.0, 0.0)
        span = "" if not secs else f"; {lo:.2f} s" if lo == hi else f"; {lo:.2f}-{hi:.2f} s"
        notice(f"note: {source} is {where}: {len(bad)} undecodable frame{'s' if len(bad) > 1 else ''} skipped "
               f"(frame {frame_list(spans(bad))}{span}; {progress.first_error}): the output repeats the last good "
               "segmentation there, "
               f"so it keeps all {written} frames")
    if reader.truncated and not progress.interrupted:
        notice(f"note: {source} looks truncated: {reader.truncated}; the output holds the {written} frames "
               "that could be read")
    if progress.no_vectors:
        notice(f"note: {progress.no_vectors} frames had no motion vectors (intra frames or a codec that exports "
               "none); mv reused the previous field or zero flow there")
