"""Flow sources on SynthDrive: EPE against the true flow, ms per frame, EVSS mIoU at interval 5.

    python benchmarks/flow_sources.py --weights synthdrive_light --clips 4 --frames 20 --size 256x512 \
        --threads 2 --out docs/flow_sources.md

For every consecutive pair (t-1, t) the estimated backward flow t -> t-1 on the 1/4 grid is
compared with the true one averaged onto that grid (4x4 area mean); EPE is reported in full-res
pixels (1/4-grid pixels x 4) over cells without occluded pixels. ``mv`` sources decode the clip
encoded to H.264 (crf 18, x264 "veryfast"): "mv (P only)" with ``bframes=0:ref=1``, "mv (x264
default GOP)" with B-pyramids and 3 reference frames. Their time is building the dense field from
the vectors (decoding itself is needed anyway; the export_mvs overhead is printed separately).
mIoU: ``VideoSegmenter`` at the interval with each source, against the labels of every frame.
"""

from __future__ import annotations

import argparse
import datetime
import json
import platform
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from evss.checkpoint import load_weights
from evss.cli.args import size
from evss.data.synthdrive import SynthDriveConfig, generate_clip
from evss.flow_sources import DISFlow, MVFlow
from evss.media import open_video, write_video_frames
from evss.metrics import ConfusionMatrix
from evss.segmenter import SegmenterConfig, VideoSegmenter
from evss.tensors import pad_to_multiple, to_tensor

MV_ENCODINGS = {"mv (P only)": {"x264-params": "bframes=0:ref=1"}, "mv (x264 default GOP)": {}}


def true_flow_quarter(flow: np.ndarray, occlusion: np.ndarray, grid: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """(2, H, W) px -> (2, h, w) 1/4-grid px (area mean) and a valid mask (no occluded pixel)."""
    t = torch.from_numpy(flow)[None]
    h, w = flow.shape[1:]
    ph, pw = grid[0] * 4 - h, grid[1] * 4 - w
    t = F.pad(t, (0, pw, 0, ph), mode="replicate")
    q = F.avg_pool2d(t, 4)[0].numpy() / 4.0
    occ = torch.from_numpy(occlusion.astype(np.float32))[None, None]
    occ = F.pad(occ, (0, pw, 0, ph), mode="replicate")
    valid = F.max_pool2d(occ, 4)[0, 0].numpy() == 0
    return q, valid


def epe(est: np.ndarray, gt: np.ndarray, valid: np.ndarray) -> float:
    return float(np.sqrt(((est - gt) ** 2).sum(0))[valid].mean() * 4)  # full-res pixels


def mv_fields(frames: np.ndarray, options: dict, tmp: Path) -> tuple[list[np.ndarray], float, float]:
    """Motion fields of the clip encoded with ``options``; ms per frame to build the dense fields from
    the vectors, and the extra decode ms per frame that ``flags2=+export_mvs`` costs."""
    import av

    from evss.media import b_frame_distances, vectors_to_flow
    path = write_video_frames(tmp / "clip.mp4", frames, fps=15, crf=18, options=options)
    with open_video(path, motion_vectors=True) as v:
        fields = [f.motion for f in v]

    def decode(export: bool) -> tuple[float, list]:
        c = av.open(str(path))
        s = c.streams.video[0]
        if export:
            s.codec_context.options = {"flags2": "+export_mvs"}
        t0, vecs = time.perf_counter(), []
        for f in c.decode(s):
            sd = f.side_data.get("MOTION_VECTORS") if export else None
            vecs.append(sd.to_ndarray() if sd is not None else None)
        dt = time.perf_counter() - t0
        c.close()
        return dt, vecs

    plain, _ = decode(False)
    exported, vecs = decode(True)
    h, w = frames.shape[1:3]
    t0, prev = time.perf_counter(), None
    for vec in vecs:
        if vec is not None:
            dp, df = b_frame_distances(vec, 1, None)
            prev = vectors_to_flow(vec, h, w, past_distance=dp, future_distance=df, fill=prev)
    build = time.perf_counter() - t0
    n = len(frames)
    return fields, 1000 * build / n, 1000 * (exported - plain) / n


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--weights", default=None, help="built-in name or checkpoint (default: the segment default)")
    ap.add_argument("--clips", type=int, default=4)
    ap.add_argument("--frames", type=int, default=20)
    ap.add_argument("--size", type=size, default="256x512")
    ap.add_argument("--interval", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=100, help="SynthDrive seeds seed..seed+clips-1")
    ap.add_argument("--out", type=Path, default=Path("docs/flow_sources.md"))
    ap.add_argument("--json", type=Path, default=None)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    h, w = a.size
    model, config, described, trained = load_weights(a.weights)
    model.eval()
    dis_variants = {"dis (fast)": DISFlow(preset="fast"), "dis (medium)": DISFlow(preset="medium"),
                    "dis (ultrafast)": DISFlow(preset="ultrafast"), "dis (fast, 1/2 res)": DISFlow(scale=0.5)}
    sources = ["learned", *dis_variants, *MV_ENCODINGS]
    errs = {s: [] for s in ["zero", *sources]}
    times = {s: [] for s in sources}
    cms = {s: ConfusionMatrix(config.num_classes) for s in ["per_frame", *sources]}
    mv_build, mv_decode = [], []
    for c in range(a.clips):
        clip = generate_clip(SynthDriveConfig(height=h, width=w, frames=a.frames), seed=a.seed + c)
        with tempfile.TemporaryDirectory() as tmp:
            fields = {}
            for name, opts in MV_ENCODINGS.items():
                fields[name], build, extra = mv_fields(clip.frames, opts, Path(tmp))
                mv_build.append(build)
                mv_decode.append(extra)
        imgs = [pad_to_multiple(to_tensor(f, torch.device("cpu"), torch.float32), 32) for f in clip.frames]
        grid = (imgs[0].shape[2] // 4, imgs[0].shape[3] // 4)
        for t in range(1, a.frames):
            gt, valid = true_flow_quarter(clip.flow_bwd[t], clip.occlusion[t], grid)
            errs["zero"].append(epe(np.zeros_like(gt), gt, valid))
            for s in sources:
                if s in MV_ENCODINGS:
                    est = MVFlow()
                    est.feed(fields[s][t])
                    fn = est
                else:
                    fn = model.flow if s == "learned" else dis_variants[s]
                t0 = time.perf_counter()
                with torch.inference_mode():
                    q = fn(imgs[t - 1], imgs[t])[0].float().numpy()
                times[s].append(time.perf_counter() - t0)
                errs[s].append(epe(q, gt, valid))
        for s in ["per_frame", *sources]:
            if s == "per_frame":
                seg = VideoSegmenter(model, config=SegmenterConfig(mode="per_frame"))
            else:
                flow = model.flow if s == "learned" else dis_variants.get(s) or MVFlow()
                seg = VideoSegmenter(model, config=SegmenterConfig(keyframe_interval=a.interval), flow=flow)
            for t, (frame, label) in enumerate(zip(clip.frames, clip.labels)):
                if isinstance(seg.flow, MVFlow):
                    seg.flow.feed(fields[s][t])
                cms[s].update(seg.step(frame).labels, label)
        print(f"clip {c + 1}/{a.clips} done")

    # The mv rows' time: building the dense field from the vectors (inside the reader) plus the
    # MVFlow call (a copy); the decoder's extra cost for exporting the vectors is reported apart.
    mv_ms = statistics.median(mv_build)
    rows = []
    for s in ["zero", *sources]:
        ms = None if s == "zero" else (mv_ms + 1000 * statistics.median(times[s]) if s in MV_ENCODINGS
                                       else 1000 * statistics.median(times[s]))
        miou = cms[s].compute()["miou"] if s in cms else None
        rows.append({"source": s, "epe_px": float(np.mean(errs[s])), "ms_per_frame": ms, "miou": miou})
    base = cms["per_frame"].compute()["miou"]
    head = (f"Measured {datetime.date.today()} on {platform.processor() or platform.machine()}, {a.threads} threads, "
            f"torch {torch.__version__}; SynthDrive {a.clips} clips x {a.frames} frames at {w}x{h} (seeds "
            f"{a.seed}..{a.seed + a.clips - 1}); weights: {described}"
            + ("." if trained else " (UNTRAINED: the learned flow's EPE and every mIoU are meaningless)."))
    lines = ["# Flow sources", "",
             "`evss segment --flow learned|dis|mv` picks N_flow, the flow that warps the propagated features "
             "(Algorithm 1, line 8). All three return the backward flow of the current frame to the previous one "
             "on the 1/4 grid, in 1/4-grid pixels (the convention of `evss.models.warp`).", "",
             "* `learned`: the model's FlowNet (the paper's N_flow), trained with the rest of EVSS.",
             "* `dis`: OpenCV's DIS optical flow (`cv2.DISOpticalFlow_create`, preset ultrafast by default) on the "
             "full-resolution "
             "grey frames, DIS(current -> previous), averaged onto the 1/4 grid. No training; a CPU library.",
             "* `mv`: the block motion vectors the H.264/MPEG decoder already has (`flags2=+export_mvs`). The reader "
             "turns them into a dense field per frame (`evss.media.motion_vectors.vectors_to_flow`): each block's "
             "`src - dst` is a backward displacement, divided by the distance to its reference frame (P frames: the "
             "previous I/P frame; B frames: both anchors, the distances read from the length ratio of bi-predicted "
             "vectors so that B-pyramids are handled; future vectors change sign); intra blocks and I frames reuse "
             "the previous field. `MVFlow` is fed each frame's field before the segmenter steps. FFmpeg does not "
             "export which of several reference frames a block uses, so multi-reference P frames are approximated.",
             "", head, "",
             f"EPE: end-point error of the backward flow t -> t-1 on the 1/4 grid against SynthDrive's true flow "
             f"(4x4 area mean), in full-resolution pixels, over cells without occluded pixels. ms: median per frame "
             f"pair at {w}x{h} (padded to multiples of 32). mIoU: EVSS at keyframe interval {a.interval}; per-frame "
             f"backbone mIoU {100 * base:.1f}%. Command: `python benchmarks/flow_sources.py --weights "
             f"{a.weights or '(default)'} --clips {a.clips} --frames {a.frames} --size {a.size[0]}x{a.size[1]} "
             f"--threads {a.threads}`.",
             "", "| source | EPE (px) | ms / frame | mIoU @ interval %d |" % a.interval, "|---|---:|---:|---:|"]
    for r in rows:
        ms = "-" if r["ms_per_frame"] is None else f"{r['ms_per_frame']:.1f}"
        miou = "-" if r["miou"] is None else f"{100 * r['miou']:.1f}%"
        lines.append(f"| {r['source']} | {r['epe_px']:.2f} | {ms} | {miou} |")
    lines += ["", "`zero` is the no-motion baseline. mv: ms to turn the decoder's vectors into the dense 1/4-grid "
              "field; the motion search itself happened in the encoder. Exporting the vectors costs the decoder "
              f"{statistics.median(mv_decode):.2f} ms per frame extra here (median over clips and encodings).", ""]
    text = "\n".join(lines)
    print(text)
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(text)
    if a.json:
        a.json.write_text(json.dumps({"rows": rows, "per_frame_miou": base, "header": head}, indent=2))


if __name__ == "__main__":
    main()
