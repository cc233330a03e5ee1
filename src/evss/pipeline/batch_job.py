"""One input of a batch, run by a worker: segment it and make its manifest record.

A worker (a local process or a Ray actor) loads the weights once, on its first input, and keeps
them for every input it runs. A failure of one input (a damaged, empty or non-video file) becomes
a ``failed`` record with the error's one line; it never stops the worker.
"""

from __future__ import annotations

import os
import socket
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from evss.errors import EvssError
from evss.pipeline.batch import BatchItem, describe_outputs
from evss.pipeline.options import SegmentOptions
from evss.pipeline.segment import segment_video
from evss.pipeline.session import LoadedWeights, load


class Interrupted(Exception):
    """Raised between frames when the batch is asked to stop: the input's outputs are discarded."""


@dataclass(frozen=True)
class BatchJob:
    """What every worker of one batch needs to run any of its inputs."""

    options: SegmentOptions
    root: Path  # the batch's output folder (the manifest's)
    fingerprint: dict[str, Any]  # the weights' hash and the options that change outputs


@dataclass
class Worker:
    """A worker's state: its job and, from its first input on, the loaded weights."""

    job: BatchJob
    weights: LoadedWeights | None = field(default=None)

    def run(self, item: BatchItem, on_frame: Callable[[], None] | None = None) -> dict[str, Any]:
        """Segment one input; the record says done (with its figures) or failed (with the error)."""
        t0 = time.time()
        notes: list[str] = []
        base = {"name": item.name, "input": item.source, "output": os.path.relpath(item.output, self.job.root),
                **self.job.fingerprint, "worker": f"{socket.gethostname()}:{os.getpid()}"}
        try:
            if self.weights is None:
                self.weights = load(self.job.options.weights, notice=notes.append)
            report = segment_video(item.source, item.output, self.job.options, item.outputs, weights=self.weights,
                                   notice=notes.append, on_frame=on_frame)
        except Interrupted:
            return {**base, "status": "interrupted", "seconds": round(time.time() - t0, 3)}
        except (EvssError, OSError) as exc:
            return {**base, "status": "failed", "error": _one_line(exc), "seconds": round(time.time() - t0, 3)}
        except Exception as exc:  # noqa: BLE001 - one input's bug must not stop the batch; its record says what
            return {**base, "status": "failed", "error": f"{type(exc).__name__}: {_one_line(exc)}",
                    "seconds": round(time.time() - t0, 3)}
        return {**base, "status": "done", "frames_in": report.frames + len(report.undecodable),
                "frames_out": report.written, "keyframes": report.keyframes,
                "fps": None if report.overall_fps is None else round(report.overall_fps, 3),
                "seconds": round(report.seconds, 3), "outputs": describe_outputs(item, self.job.root),
                "undecodable": list(report.undecodable), "notes": [n for n in notes if n.startswith("note:")],
                "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z")}


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return " ".join(text.split())
