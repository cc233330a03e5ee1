"""`segment_batch`: many videos, frame folders or globs in one run, on local workers or a Ray cluster.

    import evss
    from evss.pipeline.batch_run import BatchOptions, segment_batch
    summary = segment_batch(["a.mp4", "b.mp4", "frames/"], "out/", evss.SegmentOptions(threads=1),
                            batch=BatchOptions(workers=2))

Outputs go to ``out/<name>.mp4`` (see :mod:`evss.pipeline.batch` for names, the manifest and what
a re-run skips). Each input's outputs are written under temporary names and renamed when
complete; one input failing (a damaged, empty or non-video file) is recorded and the others go on.
"""

from __future__ import annotations

import dataclasses
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from tqdm import tqdm

from evss.checkpoint import DEFAULT_WEIGHTS, builtin_weights, file_sha256, resolve_weights
from evss.errors import EvssError
from evss.media import open_video
from evss.memory import resolve_budget
from evss.pipeline.batch import MANIFEST, BatchItem, Manifest, fingerprint, plan
from evss.pipeline.batch_job import BatchJob
from evss.pipeline.options import OutputOptions, SegmentOptions
from evss.pipeline.session import Notice


@dataclass(frozen=True)
class BatchOptions:
    """How a batch is spread: local worker processes, or a Ray cluster."""

    workers: int | None = None  # local worker processes (None: one per core, at most one per input)
    ray: bool = False  # run on Ray instead of local processes
    ray_address: str | None = None  # the cluster's address (None: a local Ray runtime for this batch)

    def __post_init__(self) -> None:
        if self.workers is not None and self.workers < 1:
            raise EvssError(f"--workers must be >= 1, got {self.workers}")


@dataclass
class BatchSummary:
    """What a batch did: the final record of each of its inputs, in input order."""

    manifest: Path
    records: list[dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0
    interrupted: bool = False

    def count(self, status: str) -> int:
        return sum(r.get("status") == status for r in self.records)

    @property
    def failed(self) -> list[dict[str, Any]]:
        return [r for r in self.records if r.get("status") == "failed"]

    def lines(self) -> list[str]:
        frames = sum(r.get("frames_out") or 0 for r in self.records if r.get("status") == "done")
        rate = f" ({frames / self.seconds:.1f} frames/s)" if frames and self.seconds > 0 else ""
        out = [f"batch: {self.count('done')} done, {self.count('failed')} failed, {self.count('skipped')} skipped "
               f"of {len(self.records)} inputs; {frames} frames in {self.seconds:.1f} s{rate}; "
               f"manifest {self.manifest}"]
        out += [f"failed: {r['input']}: {r.get('error', '')}" for r in self.failed]
        return out


def weights_hash(weights: str | Path | None) -> str:
    """sha256 (16 hex digits) of the weights file a batch runs with: what a re-run must match."""
    name = weights if weights is not None else DEFAULT_WEIGHTS
    if weights is None and DEFAULT_WEIGHTS not in builtin_weights():
        return "untrained-light-preset"
    return file_sha256(resolve_weights(name))[:16]


def segment_batch(entries: Sequence[str], out_dir: str | Path, options: SegmentOptions = SegmentOptions(),
                  outputs: OutputOptions = OutputOptions(), *, batch: BatchOptions = BatchOptions(),
                  notice: Notice = lambda msg: print(msg, file=sys.stderr)) -> BatchSummary:
    """Segment every input of ``entries`` into ``out_dir``; inputs done by an earlier run with the
    same weights and options are skipped. Ctrl-C stops between frames, discards the inputs in
    flight and returns with ``interrupted`` set (a re-run resumes)."""
    root = Path(out_dir)
    if root.exists() and not root.is_dir():
        raise EvssError(f"-o {root}: a batch writes into a folder, and this is a file")
    items = plan(entries, root, outputs)
    fp = fingerprint(weights_hash(options.weights), options, outputs)
    manifest = Manifest(root)
    last = manifest.records()
    todo = [i for i in items if not manifest.is_complete(i, last.get(i.name), fp)]
    for item in items:
        if item not in todo:
            manifest.append({**last[item.name], "status": "skipped"})
    summary = BatchSummary(manifest=manifest.path)
    t0 = time.perf_counter()
    if not todo:
        notice(f"nothing to do: all {len(items)} inputs are done with these weights and options ({manifest.path})")
    else:
        retried = sum(last.get(i.name, {}).get("status") == "failed" for i in todo)
        notice(f"evss segment: {len(items)} inputs: {len(items) - len(todo)} done earlier (skipped), {retried} failed "
               f"earlier (retried), {len(todo) - retried} to do; outputs in {root}")
        root.mkdir(parents=True, exist_ok=True)
        # the workers draw no bars of their own: the batch has one
        job = BatchJob(options=dataclasses.replace(options, progress=False), root=root, fingerprint=fp)
        summary.interrupted = _dispatch(todo, job, batch, options)
    summary.seconds = time.perf_counter() - t0
    manifest.compact([i.name for i in items])
    final = manifest.records()
    summary.records = [final[i.name] for i in items if i.name in final]
    return summary


def _dispatch(todo: list[BatchItem], job: BatchJob, batch: BatchOptions, options: SegmentOptions) -> bool:
    """Run the inputs to do; True if Ctrl-C stopped the batch."""
    threads = options.threads or 1
    total = sum(_frames(i.source, options) for i in todo)
    bar = tqdm(total=total or None, unit="frame", desc=f"0/{len(todo)} files", disable=not options.progress,
               dynamic_ncols=True, file=sys.stderr)
    done = [0]

    def report(record: dict[str, Any]) -> None:
        done[0] += 1
        bar.set_description(f"{done[0]}/{len(todo)} files")
        if batch.ray and record.get("status") in ("done", "failed"):
            Manifest(job.root).append(record)
            bar.update(record.get("frames_out") or 0)

    try:
        if batch.ray:
            from evss.pipeline.ray_workers import run_ray
            run_ray(todo, job, address=batch.ray_address, threads=threads, report=report)
        else:
            from evss.pipeline.local_workers import run_local
            workers = min(batch.workers or max(1, (os.cpu_count() or 1) // threads), len(todo))
            job = dataclasses.replace(job, options=_per_worker(options, workers))
            run_local(todo, job, workers=workers, threads=threads, report=report, frame_done=bar.update)
    except KeyboardInterrupt:
        return True
    finally:
        bar.close()
    return False


def _per_worker(options: SegmentOptions, workers: int) -> SegmentOptions:
    """Each worker's memory budget: the default budget shared between the workers (unless set)."""
    if options.max_memory is not None or workers == 1:
        return options
    return dataclasses.replace(options, max_memory=str(resolve_budget(None).bytes // workers))


def _frames(source: str, options: SegmentOptions) -> int:
    """The frame count an input announces (0 where it cannot be read: the worker will say why)."""
    try:
        with open_video(source, max_size=options.max_size, fps=options.fps, on_error="skip") as reader:
            return reader.info.frames or 0
    except Exception:  # noqa: BLE001 - any unreadable input counts 0 here; its worker records the error
        return 0


__all__ = ["MANIFEST", "BatchOptions", "BatchSummary", "segment_batch"]
