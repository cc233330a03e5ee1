"""The state of one segmenting run: its running totals and its Ctrl-C guard."""

from __future__ import annotations

import signal
import threading
from dataclasses import dataclass, field


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
