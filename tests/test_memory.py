"""The memory budget: the estimate (checked against measured peak RSS across sizes), the plan, and
`evss segment` / `evss eval` under a low --max-memory, on tall thin and large frames."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from evss import memory
from evss.cli import main
from evss.config import preset
from evss.errors import EvssError

MiB = memory.MiB


@pytest.fixture
def weights(tiny_weights) -> str:
    return str(tiny_weights)  # the vivid tiny model (conftest)


def frames_folder(root: Path, h: int, w: int, n: int = 1) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    small = rng.integers(0, 256, (max(1, h // 16), max(1, w // 16), 3), dtype=np.uint8)
    img = np.asarray(Image.fromarray(small).resize((w, h), Image.BILINEAR))  # smooth, compresses well
    for i in range(n):
        Image.fromarray(np.roll(img, 2 * i, axis=1)).save(root / f"{i:03d}.png")
    return root


def segment(capsys, *args) -> tuple[int, str]:
    rc = main(["segment", *map(str, args), "-q", "--threads", "1"])
    err = capsys.readouterr().err
    assert "Traceback" not in err, err
    return rc, err


# ---- units -------------------------------------------------------------------------------------

def test_parse_bytes_reads_units_and_names_bad_values():
    assert memory.parse_bytes("2G") == 2 * 1024 ** 3
    assert memory.parse_bytes("1500M") == 1500 * MiB
    assert memory.parse_bytes("512MiB") == 512 * MiB
    assert memory.parse_bytes("1.5gb") == int(1.5 * 1024 ** 3)
    assert memory.parse_bytes("4096") == 4096
    for bad in ("", "two G", "2X", "-1G", "0"):
        with pytest.raises(EvssError, match="memory size"):
            memory.parse_bytes(bad)


def test_available_memory_and_default_budget(tmp_path):
    info = tmp_path / "meminfo"
    info.write_text("MemTotal: 100 kB\nMemAvailable:    2048 kB\n")
    assert memory.available_memory(info) == 2048 * 1024
    assert memory.available_memory(tmp_path / "missing") is None
    budget = memory.resolve_budget(None)
    assert 0 < budget.bytes <= memory.DEFAULT_CAP and "available" in budget.source
    assert memory.resolve_budget("1G").bytes == 1024 ** 3


def test_model_estimate_grows_with_width_and_classes():
    tiny, light, paper = (memory.model_pixel_bytes(preset(n)) for n in ("tiny", "light", "paper"))
    assert tiny < light < paper
    assert memory.model_pixel_bytes(preset("lite0")) > light  # the SwiftNet keyframe network is heavier
    assert memory.model_pixel_bytes(preset("light"), maps=True) > light
    assert memory.model_pixel_bytes(preset("light"), dtype_bytes=2) == pytest.approx(light / 2)


def test_h264_size_keeps_the_aspect_ratio_under_the_encoder_limits():
    assert memory.h264_size(1080, 1920) == (1080, 1920)
    h, w = memory.h264_size(36, 17001)
    assert w <= memory.H264_MAX_SIDE and h % 2 == 0 and w % 2 == 0 and abs(w / h - 17001 / 36) / (17001 / 36) < 0.1
    h, w = memory.h264_size(16384, 16384)  # each side fits, the pixel count does not
    assert memory.h264_fits(h, w) and not memory.h264_fits(16384, 16384) and h == w


# ---- the plan ----------------------------------------------------------------------------------

def test_plan_fits_downscales_or_refuses_with_what_to_pass():
    buffers = memory.Buffers(held=400 * MiB, writing=50 * MiB, overlapped=False)
    big = memory.Budget(10 * 1024 ** 3, "test")
    p = memory.plan(height=900, width=1200, model_px=200, buffers=buffers, budget=big, allow_downscale=True,
                    what="x")
    assert (p.height, p.width) == (900, 1200) and not p.downscaled
    small = memory.Budget(500 * MiB, "--max-memory 500M")
    p = memory.plan(height=9000, width=12000, model_px=200, buffers=buffers, budget=small, allow_downscale=True,
                    what="x")
    assert p.downscaled and p.estimate <= small.bytes < p.full_estimate
    assert abs(p.width / p.height - 12000 / 9000) < 0.02 and (p.out_height, p.out_width) == (9000, 12000)
    with pytest.raises(EvssError) as exc:
        memory.plan(height=9000, width=12000, model_px=200, buffers=buffers, budget=small, allow_downscale=False,
                    what="in.png")
    msg = str(exc.value)
    assert "in.png: a 12000x9000 frame needs about" in msg and "--max-memory 500M" in msg
    assert "pass --max-memory" in msg and "--no-downscale" in msg
    with pytest.raises(EvssError, match="leave no room for the model.*pass --max-memory"):
        memory.plan(height=9000, width=12000, model_px=200, buffers=buffers, budget=memory.Budget(300 * MiB, "t"),
                    allow_downscale=True, what="x")


# ---- the estimate against measurement -----------------------------------------------------------

MEASURE = textwrap.dedent("""
    import json, resource, sys
    import numpy as np, torch
    torch.set_num_threads(1)
    from evss.config import build_model, preset
    from evss.segmenter import SegmenterConfig, VideoSegmenter
    torch.manual_seed(0)
    seg = VideoSegmenter(build_model(preset("tiny")).eval(), config=SegmenterConfig(keyframe_interval=2))
    def status(key):
        for line in open("/proc/self/status"):
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024
    peaks = []
    for h, w in ((64, 96), tuple(json.loads(sys.argv[1]))):  # a warm-up size takes the one-off allocations
        frame = np.random.default_rng(0).integers(0, 256, (h, w, 3), dtype=np.uint8)
        seg.reset()
        # The high-water mark of the whole process would include import-time peaks that later
        # allocations reuse: reset it (Linux clear_refs 5) and measure from the current RSS.
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        start = status("VmRSS")
        for _ in range(3):  # a keyframe, a non-keyframe, a keyframe
            seg.step(frame)
        peaks.append((start, status("VmHWM")))
    (warm_start, warm_peak), (start, peak) = peaks
    print(json.dumps({"warm": start, "peak": peak}))
""")


def test_model_estimate_bounds_the_measured_peak_rss_across_sizes():
    """In a fresh process per size, after a warm-up on a small frame, the peak RSS grows by at most
    the estimate, and by a fair share of it (the estimate is an upper bound, not a wild one)."""
    px = memory.model_pixel_bytes(preset("tiny"))
    for h, w in [(384, 512), (768, 1024), (1024, 1536)]:
        run = subprocess.run([sys.executable, "-c", MEASURE, json.dumps([h, w])], capture_output=True, text=True,
                             timeout=300, env={"OMP_NUM_THREADS": "1", "PATH": ""})
        assert run.returncode == 0, run.stderr
        got = json.loads(run.stdout.strip().splitlines()[-1])
        grown, estimated = got["peak"] - got["warm"], memory.model_bytes(px, h, w)
        assert 0.3 * estimated < grown <= estimated, (h, w, grown / MiB, estimated / MiB)
        assert got["peak"] <= memory.BASELINE + estimated, (h, w, got["peak"] / MiB)


# The peak of this process's own memory: VmHWM. (ru_maxrss is not it: Linux carries the high-water
# mark across fork + exec, so a child of a large pytest process reports the parent's RSS.)
SEGMENT_RSS = textwrap.dedent("""
    import sys
    from evss.cli import main
    rc = main(sys.argv[1:])
    hwm = next(l for l in open("/proc/self/status").read().splitlines() if l.startswith("VmHWM:"))
    print("RSS", int(hwm.split()[1]) * 1024, "RC", rc)
""")


def test_segment_peak_rss_stays_under_a_low_max_memory(tmp_path, weights):
    """A 2400x3200 frame with --max-memory 900M: segmented smaller, measured peak under the budget."""
    folder = frames_folder(tmp_path / "big", 2400, 3200, n=2)
    out = tmp_path / "o.mp4"
    run = subprocess.run([sys.executable, "-c", SEGMENT_RSS, "segment", str(folder), "-o", str(out), "--weights",
                          weights, "--max-memory", "900M", "--threads", "1", "-q", "--save-labels",
                          str(tmp_path / "labels")], capture_output=True, text=True, timeout=300,
                         env={"OMP_NUM_THREADS": "1", "PATH": ""})
    assert run.returncode == 0 and "Traceback" not in run.stderr, run.stderr
    rss = int(run.stdout.split("RSS")[1].split()[0])
    assert "segmenting at" in run.stderr and "upsampling the labels to 3200x2400" in run.stderr, run.stderr
    assert rss <= 900 * MiB, rss / MiB
    assert Image.open(tmp_path / "labels" / "000001.png").size == (3200, 2400)
    import av
    with av.open(str(out)) as c:
        s = c.streams.video[0]
        assert (s.width, s.height) == (3200, 2400)


# ---- evss segment ------------------------------------------------------------------------------

def test_tall_thin_frame_keeps_its_size_everywhere(tmp_path, weights, capsys):
    folder = frames_folder(tmp_path / "tall", 1500, 6, n=2)
    rc, err = segment(capsys, folder, "-o", tmp_path / "t.mp4", "--weights", weights, "--save-labels",
                      tmp_path / "labels", "--save-maps", tmp_path / "maps")
    assert rc == 0, err
    assert Image.open(tmp_path / "labels" / "000000.png").size == (6, 1500)
    assert Image.open(tmp_path / "maps" / "fine" / "000001.png").size == (6, 1500)
    import av
    with av.open(str(tmp_path / "t.mp4")) as c:
        assert (c.streams.video[0].width, c.streams.video[0].height) == (6, 1500)


def test_low_max_memory_downscales_the_model_not_the_outputs(tmp_path, weights, capsys):
    folder = frames_folder(tmp_path / "f", 600, 800, n=3)
    rc, err = segment(capsys, folder, "-o", tmp_path / "o.mp4", "--weights", weights, "--max-memory", "455M",
                      "--save-labels", tmp_path / "labels", "--save-maps", tmp_path / "maps.mp4", "--layout", "side")
    assert rc == 0, err
    note = next(line for line in err.splitlines() if "over the memory budget" in line)
    assert "800x600 frames need about" in note and "(--max-memory 455M)" in note
    assert "upsampling the labels to 800x600" in note
    for i in range(3):
        labels = np.asarray(Image.open(tmp_path / "labels" / f"{i:06d}.png"))
        assert labels.shape == (600, 800) and labels.max() < 11
    import av
    for video, size in (("o.mp4", (1600, 600)), ("maps.mp4", (800, 600))):
        with av.open(str(tmp_path / video)) as c:
            s = c.streams.video[0]
            assert (s.width, s.height) == size and sum(1 for _ in c.decode(video=0)) == 3


def test_no_downscale_stops_with_the_size_the_estimate_and_what_to_pass(tmp_path, weights, capsys):
    folder = frames_folder(tmp_path / "f", 600, 800)
    rc, err = segment(capsys, folder, "-o", tmp_path / "o.mp4", "--weights", weights, "--max-memory", "455M",
                      "--no-downscale")
    line = next(line for line in err.splitlines() if line.startswith("evss segment: error:"))
    assert rc == 2 and "a 800x600 frame needs about" in line and "over the memory budget of 455.0 MB" in line
    assert "pass --max-memory" in line and not (tmp_path / "o.mp4").exists()
    rc, err = segment(capsys, folder, "-o", tmp_path / "o.mp4", "--weights", weights, "--max-memory", "lots")
    assert rc == 2 and "memory size 'lots'" in err
    rc, err = segment(capsys, folder, "-o", tmp_path / "o.mp4", "--weights", weights, "--max-memory", "100M")
    assert rc == 2 and "leave no room for the model" in err and "pass --max-memory" in err


def test_a_frame_too_wide_for_h264_is_encoded_smaller_and_said_so(tmp_path, weights, capsys):
    folder = frames_folder(tmp_path / "wide", 20, 16500)
    rc, err = segment(capsys, folder, "-o", tmp_path / "w.mp4", "--weights", weights, "--save-labels",
                      tmp_path / "labels")
    assert rc == 0, err
    assert "H.264 cannot encode 16500x20 frames" in err and "label PNGs keep 16500x20" in err
    assert Image.open(tmp_path / "labels" / "000000.png").size == (16500, 20)
    import av
    with av.open(str(tmp_path / "w.mp4")) as c:
        assert c.streams.video[0].width <= memory.H264_MAX_SIDE


def test_video_writer_names_sizes_h264_refuses(tmp_path):
    from evss.media import VideoWriter
    with pytest.raises(EvssError, match=r"H.264 cannot encode 17000x40 frames .* would fit"):
        VideoWriter(tmp_path / "x.mp4", 25, 40, 17000)


# ---- evss eval ---------------------------------------------------------------------------------

class _Source:
    """Two 64x96 sequences of 4 frames, all labelled."""

    def __init__(self) -> None:
        rng = np.random.default_rng(0)
        self.frames = rng.integers(0, 256, (2, 4, 64, 96, 3), dtype=np.uint8)
        self.labels = rng.integers(0, 11, (2, 4, 64, 96), dtype=np.uint8)

    def num_sequences(self) -> int:
        return 2

    def sequence_length(self, s: int) -> int:
        return 4

    def labelled_indices(self, s: int):
        return range(4)

    def frame(self, s: int, t: int) -> np.ndarray:
        return self.frames[s, t]

    def label(self, s: int, t: int) -> np.ndarray:
        return self.labels[s, t]


def test_eval_scores_labels_upsampled_from_a_smaller_model_size(tiny_model):
    from evss.evaluation import Method, eval_memory_plan, evaluate
    src = _Source()
    zero = lambda s, t: (np.zeros((2, 64, 96), np.float32), None)  # noqa: E731
    methods = [Method(m, tiny_model, m) for m in ("per_frame", "evss")]
    rep = evaluate(methods, src, num_classes=11, intervals=(1, 2), tc_flow=zero, tc_flow_name="zero",
                   progress=False, model_size=(32, 48))
    assert all(0 <= v["miou"] <= 1 for v in rep["methods"]["evss"]["intervals"].values())
    plan = eval_memory_plan(source=src, config=preset("tiny"), models=1, budget=memory.Budget(10 ** 12, "t"),
                            allow_downscale=True, tc=True)
    assert not plan.downscaled
    with pytest.raises(EvssError, match="evss eval: a 96x64 frame needs about"):
        eval_memory_plan(source=src, config=preset("tiny"), models=1, budget=memory.Budget(401 * MiB, "t"),
                         allow_downscale=False, tc=True)


RETAINED = textwrap.dedent("""
    import os, sys
    from evss.memory import return_freed_memory
    if sys.argv[1] == "fixed" and not return_freed_memory():
        print("NOGLIBC"); raise SystemExit
    def rss():
        return int(open("/proc/self/statm").read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    big = bytearray(24 << 20); del big  # glibc's default then raises its mmap threshold to 24 MiB
    before = rss()
    blocks = [bytearray(8 << 20) for _ in range(6)]  # frame-sized buffers, touched
    pin = bytearray(100_000)  # a small live block above them: the heap cannot shrink past it
    del blocks
    print("RETAINED", (rss() - before) >> 20)
""")


def test_freed_frame_buffers_go_back_to_the_os():
    """glibc keeps freed frame-sized buffers once its dynamic mmap threshold has grown; with
    return_freed_memory (what segment and eval call) they go back to the OS."""
    out = {}
    for mode in ("default", "fixed"):
        run = subprocess.run([sys.executable, "-c", RETAINED, mode], capture_output=True, text=True, timeout=60)
        assert run.returncode == 0, run.stderr
        if "NOGLIBC" in run.stdout:
            pytest.skip("no glibc mallopt here")
        out[mode] = int(run.stdout.split("RETAINED")[1].split()[0])
    assert out["default"] >= 24 and out["fixed"] <= 4, out


def test_the_inference_size_caps_the_size_the_model_segments_at():
    """Frames whose longer side is over the weights' inference size are planned at it (same aspect
    ratio), the budget may shrink them further; frames that fit and no setting keep their size."""
    import torch
    cpu, cfg = torch.device("cpu"), preset("tiny")
    assert memory.inference_shape(1080, 1920, 512) == (288, 512)
    assert memory.inference_shape(300, 400, 512) is None and memory.inference_shape(1080, 1920, None) is None
    plan = memory.segment_plan(1080, 1920, config=cfg, device=cpu, dtype_bytes=4, max_memory="8G", max_side=512)
    assert plan.inference == (288, 512) and (plan.plan.height, plan.plan.width) == (288, 512)
    assert plan.video == (1080, 1920)  # the outputs keep the frames' size
    tight = memory.segment_plan(1080, 1920, config=cfg, device=cpu, dtype_bytes=4, max_memory="700M", max_side=1024,
                                allow_downscale=False)  # the full size would be refused, the inference size fits
    assert tight.inference == (576, 1024) and (tight.plan.height, tight.plan.width) == (576, 1024)
    with pytest.raises(EvssError, match="a 1920x1080 frame at its inference size 1024x576 needs about .* the "
                                        "outputs kept at 1920x1080"):
        memory.segment_plan(1080, 1920, config=cfg, device=cpu, dtype_bytes=4, max_memory="500M", max_side=1024,
                            allow_downscale=False)
    smaller = memory.segment_plan(1080, 1920, config=cfg, device=cpu, dtype_bytes=4, max_memory="600M", max_side=1024)
    assert smaller.plan.downscaled and smaller.plan.width < 1024 and smaller.video == (1080, 1920)
    same = memory.segment_plan(300, 400, config=cfg, device=cpu, dtype_bytes=4, max_memory="8G", max_side=512)
    none = memory.segment_plan(300, 400, config=cfg, device=cpu, dtype_bytes=4, max_memory="8G")
    assert same == none and same.inference is None and (same.plan.height, same.plan.width) == (300, 400)
