"""`evss eval`: the paper's evaluation protocol (:mod:`evss.evaluation`) on the data and weights the
flags name, with baselines, flow sources, variants and compared models as rows; prints one line per
row and writes the report (report.json, report.md, plots) into ``--out``."""

from __future__ import annotations

import argparse
import shlex
import sys
import time
from typing import Any

import torch

from evss import memory
from evss.backends import with_backend
from evss.checkpoint import load_model
from evss.device import init_distributed
from evss.errors import EvssError
from evss.evaluation import (
    METHODS,
    EvalData,
    EvalSource,
    component_costs,
    eval_memory_plan,
    eval_source,
    evaluate,
    method_rows,
    tc_flow_for,
    write_report,
)
from evss.label_sets import collapse_table
from evss.memory import format_bytes, resolve_budget
from evss.models.evss import EVSSNet


def run(args: argparse.Namespace) -> int:
    memory.return_freed_memory()  # peaks that follow the memory plan, whatever the thread timing
    if args.threads:
        torch.set_num_threads(args.threads)
    runtime = init_distributed(args.device)  # under torchrun: one process per device, sequences split by rank
    try:
        return _run(args, runtime.device, rank=runtime.rank, world=runtime.world_size)
    finally:
        runtime.close()


def eval_data(args: argparse.Namespace) -> EvalData:
    """The data flags as an :class:`EvalData`."""
    return EvalData(kind=args.data, root=args.root, split=args.split, clips=args.clips, seed=args.seed,
                    size=tuple(args.size), frames=args.frames, holdout_list=getattr(args, "holdout_list", None))


def schedule(args: argparse.Namespace, opened: EvalSource) -> tuple[tuple[int, ...], list[str], str]:
    """(intervals, modes, target) of the run: the flags', or, on single frames, per frame at interval 1
    (the defaults there); a flag asking for propagation on single frames is a one-line error."""
    modes = [m.strip() for m in (args.methods or ",".join(METHODS)).split(",") if m.strip()]
    if not opened.single_frames:
        return tuple(args.intervals), modes, args.target
    why = (f"--data {args.data} holds single frames, scored per frame only (every frame its own keyframe: "
           "keyframe interval 1)")
    if getattr(args, "intervals_given", False) and tuple(args.intervals) != (1,):
        raise EvssError(f"--intervals {','.join(map(str, args.intervals))}: {why}; drop --intervals")
    if args.methods is not None and set(modes) != {"per_frame"}:
        raise EvssError(f"--methods {args.methods}: {why}; drop --methods or pass --methods per_frame")
    for flag, value in (("--flow-sources", args.flow_sources), ("--variant", args.variant),
                        ("--compare", args.compare)):
        if value:
            raise EvssError(f"{flag}: {why}, and {flag} adds propagated rows; drop it")
    return (1,), ["per_frame"], "single"


def _model_size(args: argparse.Namespace, source: Any, config: Any, *, tc: bool) -> tuple[int, int] | None:
    """The size frames are segmented at: the inference size (``--inference-size``, else the weights')
    for frames larger than it, smaller still where the memory plan downscales them (None: as they are)."""
    mem = eval_memory_plan(source=source, config=config, models=1 + len(args.compare) + len(args.variant),
                           budget=resolve_budget(args.max_memory), allow_downscale=not args.no_downscale,
                           tc=tc, what=f"evss eval --data {args.data}")
    given = getattr(args, "inference_size", None)
    cap = config.inference_size if given is None else (given or None)
    shape = memory.inference_shape(mem.out_height, mem.out_width, cap)
    if shape is not None and (not mem.downscaled or shape[0] * shape[1] <= mem.height * mem.width):
        how = "the inference size of these weights" if given is None else f"--inference-size {given}"
        print(f"note: {mem.out_width}x{mem.out_height} frames are segmented at {shape[1]}x{shape[0]} (longer side "
              f"{cap}: {how}) and the labels upsampled to {mem.out_width}x{mem.out_height} for scoring",
              file=sys.stderr)
        return shape
    if not mem.downscaled:
        return None
    print(f"note: {mem.out_width}x{mem.out_height} frames need about {format_bytes(mem.full_estimate)} with this "
          f"model, over the memory budget of {format_bytes(mem.budget.bytes)} ({mem.budget.source}); segmenting "
          f"at {mem.width}x{mem.height} and scoring the labels upsampled to {mem.out_width}x{mem.out_height} "
          "(--max-memory raises the budget, --no-downscale stops instead)", file=sys.stderr)
    return mem.height, mem.width


def _say_what_is_scored(args: argparse.Namespace, config: Any, opened: EvalSource, sets: Any, *,
                        rank: int) -> None:
    """A note on stderr where the scores are not the plain ones: single frames, or collapsed classes."""
    if rank != 0:
        return
    if opened.single_frames:
        n = opened.source.num_sequences()
        n = n if args.max_sequences is None else min(n, args.max_sequences)
        print(f"note: --data {args.data}: {n} single frames, scored per frame (keyframe interval 1)", file=sys.stderr)
    if sets is not None:
        print(f"note: {config.num_classes}-class {config.label_space} predictions scored on {opened.label_space} "
              f"labels, collapsed to its {len(sets)} classes by the label sets (the argmax of each set's summed "
              "probability)", file=sys.stderr)


def _run(args: argparse.Namespace, device: torch.device, *, rank: int, world: int) -> int:
    model, config = load_model(args.weights)
    model = model.to(device).eval()
    reference = EVSSNet(backbone=model.backbone, flow=model.flow, correction=model.correction,
                        distortion=model.distortion).eval()  # PyTorch's parts, for the cost table's FLOPs
    backend = {"device": device, "dtype": torch.float32, "threads": args.threads, "precision": args.precision}
    with_backend(model, args.backend, **backend)
    opened = eval_source(eval_data(args))
    intervals, modes, target = schedule(args, opened)
    sets = collapse_table(config.label_space, opened.label_space)  # None: scored in the model's own classes
    _say_what_is_scored(args, config, opened, sets, rank=rank)
    tc_name = args.tc_flow or opened.tc_flow_default
    model_size = _model_size(args, opened.source, config, tc=tc_name != "none")
    tc_flow = tc_flow_for(tc_name, opened, model, device, kind=args.data, model_size=model_size)
    methods = method_rows(model, config, device, modes=modes,
                          flow_sources=[v.strip() for v in args.flow_sources.split(",") if v.strip()],
                          variants=args.variant, compare=args.compare, propagation=args.propagation,
                          label_space=opened.label_space, label_sets=sets)
    for m in methods:  # --compare models (the others share the parts of --weights, already replaced)
        with_backend(m.model, args.backend, **backend)
    t0 = time.perf_counter()
    report = evaluate(methods, opened.source, num_classes=config.num_classes if sets is None else len(sets),
                      intervals=intervals, target=target, tc_interval=args.tc_interval, tc_flow=tc_flow,
                      tc_flow_name=tc_name, device=device, max_sequences=args.max_sequences,
                      panel_samples=args.panels, rank=rank, world=world, model_size=model_size)
    report["seconds"] = time.perf_counter() - t0
    report["flow_of_plain_rows"] = config.flow_source if config.flow_source not in ("learned", "mv") else "learned"
    report["device"], report["threads"] = str(device), torch.get_num_threads()
    report["backend"], report["precision"] = args.backend, args.precision
    report["weights"], report["preset"] = str(args.weights), config.name
    if rank != 0:
        return 0
    costs = None
    if args.costs_size:
        h, w = args.costs_size
        costs = component_costs(reference, h, w)
        costs["size"] = f"{h}x{w}"
    md = write_report(report, args.out, label_space=opened.label_space, costs=costs, model_space=config.label_space,
                      command="evss eval " + " ".join(shlex.quote(a) for a in sys.argv[2:]))
    for name, m in report["methods"].items():
        row = " ".join(f"{d}:{100 * m['intervals'][str(d)]['miou']:.1f}" for d in intervals)
        tc = m["temporal_consistency"]
        print(f"{name:>12}  mIoU {row}  TC {'n/a' if tc is None else f'{100 * tc:.1f}'}")
    print(f"wrote {md} ({report['seconds']:.0f} s)")
    return 0
