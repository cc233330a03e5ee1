"""`evss bench`: time each part and the whole stream against the per-frame backbone, in one run.

    evss bench --size 512x1024 --threads 2 --keyframe-interval 5 --flow learned dis mv --json bench.json

Parts (median of ``--runs`` after ``--warmup``, batch 1, no grad): the keyframe (backbone + labels),
the backbone alone, the labels (the fast path the segmenter uses and the exact x4-upsample-argmax),
each flow source, warp, CoNet, distortion maps + fusion on the 1/4 grid. Streams: a SynthDrive
clip of ``--frames`` frames through ``VideoSegmenter``, per-frame mode, and EVSS and warp-only at
the keyframe interval with each flow source, timing every frame as the segmenter does (model and
fusion, not decoding); the streams take turns ``--repeats`` times, and the medians of keyframe and
non-keyframe times give the mean frame. The ``mv`` source's fields are decoded from the clip encoded to H.264 first;
turning vectors into a dense field is part of decoding and is reported separately (``mv_field``),
next to the decode time with and without ``export_mvs``.

Ratios: non-keyframe / keyframe (stream medians) and average frame at the interval / per-frame
backbone, for each flow source (EVSS: key ``NAME``; warp-only: ``warp_only_NAME``).
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import av
import numpy as np
import torch

from evss.backends import with_backend
from evss.checkpoint import load_weights
from evss.config import build_model, preset
from evss.data.synthdrive import SynthDriveConfig, generate_clip
from evss.device import resolve_device, resolve_dtype
from evss.errors import EvssError
from evss.flow_sources import MVFlow, make_flow_source
from evss.media import atomic_write, open_video, vectors_to_flow, write_video_frames
from evss.models.distortion import merge
from evss.models.evss import EVSSNet
from evss.models.upsample import labels_from_quarter
from evss.models.warp import warp
from evss.segmenter import SegmenterConfig, VideoSegmenter
from evss.tensors import pad_to_multiple, to_tensor


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn, *, runs: int, warmup: int, device) -> float:
    """Median wall time of ``fn()`` in ms, device synchronised."""
    for _ in range(warmup):
        fn()
    ts = []
    for _ in range(runs):
        _sync(device)
        t0 = time.perf_counter()
        fn()
        _sync(device)
        ts.append(time.perf_counter() - t0)
    return 1000 * statistics.median(ts)


def _median_ms(values: list[float]) -> float | None:
    return 1000 * statistics.median(values) if values else None


def _decode_fields(path: Path) -> tuple[list, float, float, float]:
    """Motion fields of an encoded clip and ms per frame: decode plain, decode + export_mvs, field build."""
    def decode(opts: dict | None) -> tuple[float, list]:
        c = av.open(str(path))
        s = c.streams.video[0]
        if opts:
            s.codec_context.options = opts
        t0, out = time.perf_counter(), []
        for f in c.decode(s):
            f.to_ndarray(format="rgb24")
            if opts:
                sd = f.side_data.get("MOTION_VECTORS")
                out.append(sd.to_ndarray() if sd is not None else None)
        dt = time.perf_counter() - t0
        c.close()
        return dt, out

    plain, _ = decode(None)
    with_mvs, vectors = decode({"flags2": "+export_mvs"})
    n = len(vectors)
    with open_video(path, motion_vectors=True) as v:
        h, w = v.info.height, v.info.width
        fields = [f.motion for f in v]
    t0 = time.perf_counter()
    for vec in vectors:
        if vec is not None:
            vectors_to_flow(vec, h, w, fill=np.zeros((2, (h + 3) // 4, (w + 3) // 4), np.float32))
    build = time.perf_counter() - t0
    return fields, 1000 * plain / n, 1000 * with_mvs / n, 1000 * build / n


def bench(model, *, size: tuple[int, int], device, flows: list[str], interval: int, frames: int, runs: int,
          warmup: int, repeats: int = 2, dtype=None) -> dict:
    """Time each part, then the streams (per-frame, EVSS and warp-only with each flow source) and their ratios."""
    dtype = dtype or torch.float32
    h, w = size
    model.prepare_inference()  # as VideoSegmenter does: BN folded, NHWC for SwiftNet
    model = model.to(device, dtype).eval()
    clip = generate_clip(SynthDriveConfig(height=h, width=w, frames=max(frames, 2)), seed=0)
    result: dict = {"parts_ms": {}, "streams": {}, "ratios": {}}
    fields = None
    with tempfile.TemporaryDirectory() as tmp:
        if "mv" in flows:
            mp4 = write_video_frames(Path(tmp) / "clip.mp4", clip.frames, fps=15, crf=18)
            fields, dec, dec_mv, build = _decode_fields(mp4)
            result["decode_ms"] = {"plain": dec, "export_mvs": dec_mv, "mv_field": build}
    timing = {"runs": runs, "warmup": warmup, "device": device}
    sources, result["first_call_s"] = _time_parts(model, clip, result["parts_ms"], flows=flows, fields=fields,
                                                  dtype=dtype, **timing)
    result["streams"] = _time_streams(model, clip, sources, fields=fields, flows=flows, interval=interval,
                                      frames=frames, repeats=repeats, device=device, dtype=dtype)
    result["ratios"] = _ratios(result["streams"], flows, result.get("decode_ms"))
    return result


def _time_parts(model, clip, parts: dict[str, float], *, flows: list[str], fields: list | None, dtype, runs: int,
                warmup: int, device) -> tuple[dict[str, Any], dict[str, float]]:
    """Fills ``parts`` with the median ms of each part on the clip's first two frames; returns the flow
    sources and the seconds of each network's first call (with a compiled backend: its conversion, or
    loading it from the cache)."""
    h, w = clip.frames[0].shape[:2]
    key = pad_to_multiple(to_tensor(clip.frames[0], device, dtype), 32)  # (1, 3, Hp, Wp)
    cur = pad_to_multiple(to_tensor(clip.frames[1], device, dtype), 32)
    timing = {"runs": runs, "warmup": warmup, "device": device}
    first: dict[str, float] = {}  # the first call of each network: a compiled backend converts it there

    def once(name, fn):
        t0 = time.perf_counter()
        out = fn()
        _sync(device)
        first[name] = time.perf_counter() - t0
        return out

    with torch.inference_mode():
        feat = once("keyframe", lambda: model.backbone(key))  # (1, C, h, w)
        size = (h, w)
        # The keyframe network is timed before FlowNet and CoNet first run: timed after them, in the
        # same process, it measured 5-15x slower (camvid, 360x480, 2 threads; cause not pinned down).
        parts["keyframe"] = timed(lambda: labels_from_quarter(model.backbone(key), size),
                                  **timing)  # backbone + labels: what a keyframe costs the segmenter
        parts["backbone"] = timed(lambda: model.backbone(key), **timing)
        parts["labels_fast"] = timed(lambda: labels_from_quarter(feat, size), **timing)
        parts["labels_exact"] = timed(lambda: labels_from_quarter(feat, size, exact=True), **timing)
        sources = {}
        for name in flows:
            src = make_flow_source(name, model)
            if isinstance(src, MVFlow):
                src.feed(fields[1])
            sources[name] = src
            parts[f"flow_{name}"] = timed(lambda src=src: src(key, cur), **timing)
        flow = once("flow_learned", lambda: model.flow(key, cur))  # (1, 2, h, w)
        warped = warp(feat, flow)
        upd, edge = once("conet", lambda: model.correction(cur, warped))
        pred = feat.argmax(1)
        parts["warp"] = timed(lambda: warp(feat, flow), **timing)
        parts["conet"] = timed(lambda: model.correction(cur, warped), **timing)

        def fusion():  # Eqs. (3)-(5) on the 1/4 grid, as the segmenter does (labels are timed apart)
            return merge(warped, upd, model.correction.edge_probability(edge), pred, model.distortion)

        parts["fusion"] = timed(fusion, **timing)
    return sources, first


def _stream(model, clip, src, *, mode: str, fields: list | None, interval: int, frames: int, device, dtype,
            times: dict[str, list[float]]) -> int:
    """One pass over the clip; appends per-frame seconds to times["key"/"non"]; returns keyframes."""
    seg = VideoSegmenter(model, config=SegmenterConfig(mode=mode, keyframe_interval=interval), device=device,
                         flow=src, dtype=dtype)
    for f in clip.frames[:2]:  # warm-up: allocations, caches
        seg.step(f)
    seg.reset()
    keys = 0
    for t in range(frames):
        if isinstance(src, MVFlow):
            src.feed(fields[t])
        r = seg.step(clip.frames[t])
        times["key" if r.is_keyframe else "non"].append(r.seconds)
        keys += r.is_keyframe
    return keys


def _time_streams(model, clip, sources: dict[str, Any], *, fields: list | None, flows: list[str], interval: int,
                  frames: int, repeats: int, device, dtype) -> dict[str, dict]:
    """Median keyframe and non-keyframe ms of each stream, and the mean frame they give."""
    # Streams take turns, ``repeats`` times, so a noisy neighbour on the machine hits them alike.
    # EVSS and warp-only (the default mode of weights whose CoNet does not pay off) with each flow
    configs = {"per_frame": ("per_frame", None), **{f"evss_{n}": ("evss", n) for n in flows},
               **{f"warp_only_{n}": ("warp_only", n) for n in flows}}
    times = {name: {"key": [], "non": []} for name in configs}
    keyframes = {}
    for _ in range(repeats):
        for name, (mode, flow_name) in configs.items():
            src = sources.get(flow_name) if flow_name else None
            keyframes[name] = _stream(model, clip, src, mode=mode, fields=fields, interval=interval, frames=frames,
                                      device=device, dtype=dtype, times=times[name])
    streams = {}
    for name in configs:
        key, non = _median_ms(times[name]["key"]), _median_ms(times[name]["non"])
        k = keyframes[name]
        # the mean frame from the medians: robust to a few frames slowed by other processes
        streams[name] = {"frames": frames, "keyframes": k, "ms_keyframe": key, "ms_non_keyframe": non,
                         "ms_mean_frame": (k * key + (frames - k) * (non or 0.0)) / frames, "repeats": repeats}
    return streams


def _ratios(streams: dict[str, dict], flows: list[str], decode_ms: dict[str, float] | None) -> dict[str, dict]:
    """Non-keyframe / keyframe and mean frame / per-frame of each flow source's streams (EVSS: key NAME)."""
    base = streams["per_frame"]["ms_mean_frame"]
    ratios = {}
    for stream, name in [(f"{mode}_{n}", n) for mode in ("evss", "warp_only") for n in flows]:
        s = streams[stream]
        if name == "mv":  # building the field is decode-side work, but it is work: count it
            s["ms_mean_frame_with_field"] = s["ms_mean_frame"] + decode_ms["mv_field"] * (
                s["frames"] - s["keyframes"]) / s["frames"]
        ratios[name if stream.startswith("evss_") else stream] = {
            "non_keyframe_over_keyframe": (s["ms_non_keyframe"] / s["ms_keyframe"]
                                           if s["ms_non_keyframe"] and s["ms_keyframe"] else None),
            "mean_frame_over_per_frame": s.get("ms_mean_frame_with_field", s["ms_mean_frame"]) / base,
        }
    return ratios


def combinations(backends: list[str], precisions: list[str]) -> list[tuple[str, str]]:
    """(backend, precision) pairs to time, in the order given; int8 pairs only with openvino."""
    pairs = list(dict.fromkeys((b, p) for b in backends for p in precisions if p == "fp32" or b == "openvino"))
    if not pairs:
        raise EvssError(f"--precision {' '.join(precisions)}: int8 needs --backend openvino (torch and onnxruntime "
                        "run float32); add fp32 or openvino")
    return pairs


def _label(backend: str, precision: str) -> str:
    return backend if precision == "fp32" else f"{backend}-{precision}"


def run(args: argparse.Namespace) -> int:
    if args.frames < 2 or args.keyframe_interval < 1 or args.runs < 1 or args.repeats < 1:
        raise EvssError("--frames must be >= 2; --keyframe-interval, --runs and --repeats >= 1")
    pairs = combinations(args.backend, args.precision)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    dtype = resolve_dtype(device, half=args.half)
    if args.preset:
        torch.manual_seed(0)
        config = preset(args.preset)
        model, described = build_model(config).eval(), f"untrained {args.preset} preset"
    else:
        model, config, described, _ = load_weights(args.weights, notice=lambda m: print(m, file=sys.stderr))
    for backend, precision in pairs:  # refused before anything is timed: a GPU run, a missing package
        with_backend(_sharing(model), backend, device=device, dtype=dtype, threads=args.threads, precision=precision)
    h, w = args.size
    header = {"model": described, "preset": config.name, "size": [h, w], "device": str(device),
              "device_name": (torch.cuda.get_device_name(device) if device.type == "cuda"
                              else platform.processor() or platform.machine()),
              "threads": torch.get_num_threads(), "dtype": str(dtype).replace("torch.", ""),
              "torch": torch.__version__, "backend": pairs[0][0], "precision": pairs[0][1],
              "keyframe_interval": args.keyframe_interval, "runs": args.runs, "warmup": args.warmup}
    print(f"evss bench: {described} ({config.name}), {w}x{h}, device {header['device_name']} ({device}), "
          f"threads {header['threads']}, {header['dtype']}, interval {args.keyframe_interval}, "
          f"median of {args.runs} after {args.warmup} warm-up"
          + (f", backend {', '.join(_label(*p) for p in pairs)}" if pairs != [("torch", "fp32")] else ""))
    runs = {}
    for backend, precision in pairs:
        timed_model = with_backend(_sharing(model), backend, device=device, dtype=dtype, threads=args.threads,
                                   precision=precision)
        runs[_label(backend, precision)] = {"backend": backend, "precision": precision, **bench(
            timed_model, size=(h, w), device=device, flows=args.flow, interval=args.keyframe_interval,
            frames=args.frames, runs=args.runs, warmup=args.warmup, repeats=args.repeats, dtype=dtype)}
        if len(pairs) > 1:
            print(f"\n### {_label(backend, precision)}")
        _print_tables(runs[_label(backend, precision)], args.frames)
    first = runs[_label(*pairs[0])]
    res = {**header, **{k: v for k, v in first.items() if k not in ("backend", "precision")}}
    if len(pairs) > 1:  # every run in full, and the comparison; the first run's figures stay at the top level
        res["backends"] = runs
        res["comparison"] = compare(runs, args.flow)
        _print_comparison(res["comparison"], args.flow)
    if args.json:
        atomic_write(args.json, lambda p: p.write_text(json.dumps(res, indent=2) + "\n"))
        print(f"\nwrote {args.json}")
    return 0


def _sharing(model: EVSSNet) -> EVSSNet:
    """A model of the same networks, whose parts a backend can replace without touching ``model``."""
    return EVSSNet(backbone=model.backbone, flow=model.flow, correction=model.correction,
                   distortion=model.distortion).eval()


def compare(runs: dict[str, dict], flows: list[str]) -> dict[str, dict]:
    """Per run: the keyframe ms, the EVSS non-keyframe step ms (stream median) per flow source, and
    their ratios against eager torch (None where torch was not timed)."""
    base = runs.get("torch")
    out = {}
    for name, r in runs.items():
        row: dict[str, Any] = {"keyframe_ms": r["parts_ms"]["keyframe"], "correction_ms": r["parts_ms"]["conet"],
                               "first_call_s": r["first_call_s"]}
        row["keyframe_speedup"] = base["parts_ms"]["keyframe"] / row["keyframe_ms"] if base else None
        for f in flows:
            non = r["streams"][f"evss_{f}"]["ms_non_keyframe"]
            torch_non = base["streams"][f"evss_{f}"]["ms_non_keyframe"] if base else None
            row[f"non_keyframe_ms_{f}"] = non
            row[f"non_keyframe_speedup_{f}"] = torch_non / non if torch_non and non else None
        out[name] = row
    return out


def _print_comparison(comparison: dict[str, dict], flows: list[str]) -> None:
    """The backends side by side: keyframe and EVSS non-keyframe step, ms and x eager torch."""
    def fmt(v, spec=".1f"):
        return "n/a" if v is None else format(v, spec)

    cols = " | ".join(f"EVSS non-keyframe ms, {f} | x torch" for f in flows)
    print(f"\n| backend | keyframe ms | x torch | {cols} | CoNet ms | first calls s (keyframe / CoNet) |")
    print("|---|" + "---:|" * (4 + 2 * len(flows)))
    for name, row in comparison.items():
        non = " | ".join(f"{fmt(row[f'non_keyframe_ms_{f}'])} | {fmt(row[f'non_keyframe_speedup_{f}'], '.2f')}"
                         for f in flows)
        print(f"| {name} | {fmt(row['keyframe_ms'])} | {fmt(row['keyframe_speedup'], '.2f')} | {non} | "
              f"{fmt(row['correction_ms'])} | {row['first_call_s']['keyframe']:.1f} / "
              f"{row['first_call_s']['conet']:.1f} |")


def _print_tables(res: dict, frames: int) -> None:
    """The parts and the streams as markdown tables on stdout."""
    print("\n| part | ms |\n|---|---:|")
    for part, ms in res["parts_ms"].items():
        print(f"| {part} | {ms:.1f} |")
    if "decode_ms" in res:
        d = res["decode_ms"]
        print(f"| decode (plain / with export_mvs) | {d['plain']:.1f} / {d['export_mvs']:.1f} |")
        print(f"| mv: vectors -> dense field | {d['mv_field']:.1f} |")

    def ms(v, spec=".1f"):
        return "n/a" if v is None else format(v, spec)

    print(f"\n| stream ({frames} frames) | keyframes | ms keyframe | ms non-keyframe | ms mean frame | "
          "non-key / key | mean frame / per-frame |\n|---|---:|---:|---:|---:|---:|---:|")
    for name, s in res["streams"].items():
        r = res["ratios"].get(name.removeprefix("evss_"), {})
        mean = s.get("ms_mean_frame_with_field", s["ms_mean_frame"])
        print(f"| {name} | {s['keyframes']} | {ms(s['ms_keyframe'])} | {ms(s['ms_non_keyframe'])} | {ms(mean)} | "
              f"{ms(r.get('non_keyframe_over_keyframe'), '.2f') if r else '-'} | "
              f"{ms(r.get('mean_frame_over_per_frame'), '.2f') if r else '1.00'} |")
