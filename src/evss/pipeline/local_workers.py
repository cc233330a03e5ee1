"""A batch on this machine: worker processes, each loading the weights once.

Workers are spawned (not forked: torch's thread pools do not survive a fork), ignore Ctrl-C (the
batch decides what stops) and die with the batch's process (``PR_SET_PDEATHSIG``), so a batch
killed outright leaves no worker writing. Each worker appends its input's record to the manifest
as soon as the input ends, which is what lets a re-run skip it.
"""

from __future__ import annotations

import ctypes
import multiprocessing as mp
import signal
import sys
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from typing import Any, Callable, Sequence

import torch

from evss.pipeline.batch import BatchItem, Manifest
from evss.pipeline.batch_job import BatchJob, Interrupted, Worker

Report = Callable[[dict[str, Any]], None]

_worker: Worker | None = None  # this worker process's state (set by _init in each worker)
_frames: Any = None  # the queue a worker counts its frames into
_stop: Any = None  # set by the batch: stop between frames


def _init(job: BatchJob, threads: int, frames: Any, stop: Any) -> None:
    global _worker, _frames, _stop
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if sys.platform.startswith("linux"):  # die with the batch's process, even when it is killed outright
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    torch.set_num_threads(threads)
    _worker, _frames, _stop = Worker(job), frames, stop


def _tick() -> None:
    _frames.put(1)
    if _stop.is_set():
        raise Interrupted()


def _run(item: BatchItem) -> dict[str, Any]:
    record = _worker.run(item, on_frame=_tick)
    if record["status"] in ("done", "failed"):
        Manifest(_worker.job.root).append(record)
    return record


def run_local(items: Sequence[BatchItem], job: BatchJob, *, workers: int, threads: int, report: Report,
              frame_done: Callable[[int], None]) -> list[dict[str, Any]]:
    """Run ``items`` on ``workers`` processes of ``threads`` threads; ``report`` gets each record as
    it comes, ``frame_done`` the frames segmented. Ctrl-C stops every worker between frames,
    discarding the inputs in flight, and re-raises KeyboardInterrupt once they have stopped."""
    ctx = mp.get_context("spawn")
    frames, stop = ctx.Queue(), ctx.Event()
    records: list[dict[str, Any]] = []
    pool = ProcessPoolExecutor(max_workers=workers, mp_context=ctx, initializer=_init,
                               initargs=(job, threads, frames, stop))
    pending: dict[Future, BatchItem] = {pool.submit(_run, item): item for item in items}
    try:
        while pending:
            done, _ = wait(pending, timeout=0.2, return_when=FIRST_COMPLETED)
            _drain(frames, frame_done)
            for future in done:
                records.append(_result(future, pending.pop(future), job))
                report(records[-1])
    except KeyboardInterrupt:
        stop.set()
        for future in pending:
            future.cancel()
        pool.shutdown(wait=True, cancel_futures=True)
        raise
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
        _drain(frames, frame_done)
    return records


def _result(future: Future, item: BatchItem, job: BatchJob) -> dict[str, Any]:
    """The worker's record, or a failed one where the worker process died under the input."""
    try:
        return future.result()
    except BrokenProcessPool:
        record = {"name": item.name, "input": item.source, **job.fingerprint, "status": "failed",
                  "error": "the worker process died (killed, or out of memory) while segmenting it"}
        Manifest(job.root).append(record)
        return record


def _drain(frames: Any, frame_done: Callable[[int], None]) -> None:
    n = 0
    try:
        while True:
            n += frames.get_nowait()
    except Exception:  # noqa: BLE001 - queue.Empty (or a closed queue): nothing more to count
        pass
    if n:
        frame_done(n)
