"""A batch on a Ray cluster (``evss segment ... --ray [ADDRESS]``; ``pip install 'evss[cluster]'``).

One actor per worker slot loads the weights once and runs one input per task. An actor that dies
under an input (its process killed, its node lost) is restarted and the task retried, up to
:data:`RETRIES` times. Outputs are written by the actors at the paths the batch planned, so every
node must see the output folder at the same path (a shared filesystem); the manifest is written
by the batch's own process from the records the tasks return.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import torch

from evss.errors import EvssError
from evss.pipeline.batch import BatchItem
from evss.pipeline.batch_job import BatchJob, Worker

RETRIES = 3


class SegmentActor:
    """A Ray actor: a :class:`Worker` that keeps its weights between inputs."""

    def __init__(self, job: BatchJob, threads: int) -> None:
        torch.set_num_threads(threads)
        self.worker = Worker(job)

    def run(self, item: BatchItem) -> dict[str, Any]:
        return self.worker.run(item)


def _ray():
    try:
        import ray
    except ImportError:
        raise EvssError("--ray needs the ray package: pip install 'evss[cluster]' (or pip install ray)") from None
    return ray


def run_ray(items: Sequence[BatchItem], job: BatchJob, *, address: str | None, threads: int,
            report: Callable[[dict[str, Any]], None]) -> list[dict[str, Any]]:
    """Run ``items`` on the Ray cluster at ``address`` (None: a local runtime started for the batch)."""
    ray = _ray()
    started = not ray.is_initialized()
    if started:
        try:
            ray.init(address=address, include_dashboard=False, log_to_driver=False, configure_logging=False)
        except (ConnectionError, RuntimeError, ValueError) as exc:
            raise EvssError(f"--ray {address or '(local)'}: cannot connect to a Ray cluster: {exc}") from None
    try:
        slots = max(1, int(ray.cluster_resources().get("CPU", 1) // threads))
        actor = ray.remote(num_cpus=threads, max_restarts=RETRIES, max_task_retries=RETRIES)(SegmentActor)
        actors = [actor.remote(job, threads) for _ in range(min(slots, len(items)))]
        pool = ray.util.ActorPool(actors)
        records = []
        for record in pool.map_unordered(lambda a, item: a.run.remote(item), list(items)):
            records.append(record)
            report(record)
        return records
    finally:
        if started:
            ray.shutdown()
