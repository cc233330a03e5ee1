"""Bad input through the real CLI: one line on stderr naming the file or value, exit status 2, no traceback.

Each case runs ``evss.cli.main([...])`` in this process (so a stray exception fails the test with
its traceback); a few run ``evss`` in a subprocess to check the exit status a shell sees.
"""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
from pathlib import Path

import av
import numpy as np
import pytest
import torch
from PIL import Image

from evss.cli import main
from evss.media import read_video_frames, write_video_frames

TINY_TRAIN = ["--model", "tiny", "--synth-clips", "1", "--synth-frames", "2", "--synth-size", "64x128",
              "--crop", "64x128", "--batch-size", "1", "--steps", "1", "--threads", "1", "--no-progress",
              "--no-tensorboard"]


def cli(argv: list) -> int:
    """``evss ARGV`` in this process; `segment` on one thread (robust on a loaded machine), restored after."""
    threads = torch.get_num_threads()
    try:
        return main([str(a) for a in argv] + (["--threads", "1"] if argv[0] == "segment" else []))
    finally:
        torch.set_num_threads(threads)


def fails(capsys, argv: list, *needles: str) -> str:
    """Run ``evss ARGV``; assert exit 2 and one error line holding every needle; return that line."""
    rc = cli(argv)
    err = capsys.readouterr().err
    assert "Traceback" not in err, err
    lines = [line for line in err.splitlines() if line.startswith(f"evss {argv[0]}: error: ")]
    assert rc == 2 and len(lines) == 1, (rc, err)
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    return lines[0]


def png(path: Path, array: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)
    return path


def smooth(n: int, h: int = 32, w: int = 48, seed: int = 0) -> np.ndarray:
    """(n, h, w, 3) uint8 frames of a smooth pattern moving 2 px per frame."""
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 256, (h // 8 + 2, (w + 2 * n) // 8 + 2, 3)).astype(np.float32)
    import cv2
    big = cv2.resize(base, (base.shape[1] * 8, base.shape[0] * 8), interpolation=cv2.INTER_LINEAR).astype(np.uint8)
    return np.stack([big[:h, 2 * t:2 * t + w] for t in range(n)])


def intra_video(path: Path, frames: np.ndarray, codec: str = "mjpeg") -> Path:
    """A video of independently coded frames (one packet each), so one packet can be damaged."""
    c = av.open(str(path), "w")
    s = c.add_stream(codec, rate=25)
    s.height, s.width = frames.shape[1:3]
    s.pix_fmt = "yuvj420p" if codec == "mjpeg" else "yuv420p"
    for f in frames:
        for p in s.encode(av.VideoFrame.from_ndarray(f, format="rgb24")):
            c.mux(p)
    for p in s.encode(None):
        c.mux(p)
    c.close()
    return path


def damage_packet(path: Path, index: int) -> Path:
    """Overwrite the middle half of video packet ``index`` with noise (the container stays intact)."""
    with av.open(str(path)) as c:
        packets = [(p.pos, p.size) for p in c.demux(c.streams.video[0]) if p.size]
    pos, size = packets[index]
    data = bytearray(path.read_bytes())
    data[pos + size // 4:pos + 3 * size // 4] = np.random.default_rng(1).integers(0, 256, size // 2, np.uint8).tobytes()
    path.write_bytes(bytes(data))
    return path


@pytest.fixture
def weights(tiny_weights) -> Path:
    return tiny_weights  # the vivid tiny model (conftest)


@pytest.fixture(scope="module")
def video(tmp_path_factory) -> Path:
    return write_video_frames(tmp_path_factory.mktemp("v") / "in.mp4", smooth(6))


def segment(capsys, *argv) -> str:
    """Run ``evss segment``, assert success, return stderr."""
    rc = cli(["segment", *argv, "-q"])
    err = capsys.readouterr().err
    assert rc == 0 and "Traceback" not in err, err
    return err


# ---- evss segment: the input --------------------------------------------------------------------

def test_segment_missing_empty_and_not_a_video(tmp_path, weights, capsys):
    (tmp_path / "notes.mp4").write_text("not a video\n" * 20)
    (tmp_path / "empty.mp4").write_bytes(b"")
    (tmp_path / "nothing").mkdir()
    o = tmp_path / "o.mp4"
    fails(capsys, ["segment", tmp_path / "missing.mp4", "-o", o, "--weights", weights], "missing.mp4: no such file")
    fails(capsys, ["segment", tmp_path / "notes.mp4", "-o", o, "--weights", weights], "notes.mp4: not a video")
    fails(capsys, ["segment", tmp_path / "empty.mp4", "-o", o, "--weights", weights], "empty.mp4: the file is empty")
    fails(capsys, ["segment", tmp_path / "nothing", "-o", o, "--weights", weights],
          "nothing: a folder without image files")
    assert not list(tmp_path.glob("*o.*mp4"))


def test_segment_truncated_mp4_says_its_index_is_missing(tmp_path, video, weights, capsys):
    data = video.read_bytes()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: len(data) // 2])  # moov (the index) is written at the end: it is gone
    fails(capsys, ["segment", cut, "-o", tmp_path / "o.mp4", "--weights", weights],
          "cut.mp4: not a video", "without its index (moov box): truncated")


def test_segment_truncated_stream_keeps_what_is_there_and_says_so(tmp_path, weights, capsys):
    full = write_video_frames(tmp_path / "full.mkv", smooth(40))
    data = full.read_bytes()
    cut = tmp_path / "cut.mkv"
    cut.write_bytes(data[: int(len(data) * 0.7)])
    err = segment(capsys, cut, "-o", tmp_path / "o.mp4", "--weights", weights)
    n = len(read_video_frames(tmp_path / "o.mp4")[0])
    assert 0 < n < 40
    assert "cut.mkv looks truncated: the stream ended at" in err and f"the {n} frames that could be read" in err


def test_undecodable_frame_stops_or_is_skipped_keeping_the_frame_count(tmp_path, weights, capsys):
    frames = smooth(10)
    bad = damage_packet(intra_video(tmp_path / "bad.avi", frames), 4)
    out = tmp_path / "o.mp4"
    fails(capsys, ["segment", bad, "-o", out, "--weights", weights, "--save-labels", tmp_path / "labels",
                   "--on-error", "stop"], "bad.avi: frame 4 at 0.16 s cannot be decoded", "--on-error skip")
    assert not out.exists() and not (tmp_path / "labels").exists()  # nothing half-written is left
    err = segment(capsys, bad, "-o", out, "--weights", weights, "--on-error", "skip",
                  "--save-labels", tmp_path / "labels")
    assert "1 undecodable frame skipped (frame 4;" in err and "keeps all 10 frames" in err
    got = read_video_frames(out)[0].astype(int)
    assert len(got) == 10
    # frame 4 repeats frame 3's output; elsewhere consecutive outputs differ (the pattern moves)
    assert np.abs(got[4] - got[3]).mean() < 1.0 < np.abs(got[5] - got[4]).mean()
    labels = sorted((tmp_path / "labels").iterdir())
    assert [p.name for p in labels] == [f"{i:06d}.png" for i in range(10)]
    assert np.array_equal(np.asarray(Image.open(labels[4])), np.asarray(Image.open(labels[3])))


def test_undecodable_first_frame_takes_the_first_good_output(tmp_path, weights, capsys):
    bad = damage_packet(intra_video(tmp_path / "bad.avi", smooth(4)), 0)
    fails(capsys, ["segment", bad, "-o", tmp_path / "o.mp4", "--weights", weights, "--on-error", "stop"],
          "frame 0 cannot be decoded")
    err = segment(capsys, bad, "-o", tmp_path / "o.mp4", "--weights", weights, "--on-error", "skip")
    assert "(frame 0;" in err and len(read_video_frames(tmp_path / "o.mp4")[0]) == 4


def test_frame_folder_with_an_unreadable_frame(tmp_path, weights, capsys):
    d = tmp_path / "frames"
    for i, f in enumerate(smooth(5)):
        png(d / f"{i:03d}.png", f)
    (d / "002.png").write_bytes(b"\x89PNG\r\n\x1a\n but then nothing useful")
    fails(capsys, ["segment", d, "-o", tmp_path / "o.mp4", "--weights", weights, "--on-error", "stop"],
          "002.png: not a readable image", "frame 2")
    err = segment(capsys, d, "-o", tmp_path / "o.mp4", "--weights", weights, "--on-error", "skip")
    assert "(frame 2;" in err and len(read_video_frames(tmp_path / "o.mp4")[0]) == 5


def test_frame_folder_of_changing_size(tmp_path, weights, capsys):
    png(tmp_path / "f" / "0.png", np.zeros((16, 16, 3), np.uint8))
    png(tmp_path / "f" / "1.png", np.zeros((16, 20, 3), np.uint8))
    fails(capsys, ["segment", tmp_path / "f", "-o", tmp_path / "o.mp4", "--weights", weights, "--on-error", "skip"],
          "1.png: frame 1 is 20x16, the sequence started at 16x16")
    assert not (tmp_path / "o.mp4").exists()


def test_grey_rgba_and_16_bit_frames_are_converted(tmp_path, weights, capsys):
    from evss.data.sources import read_rgb
    from evss.media import FrameFolderReader
    ramp = np.tile(np.linspace(0, 65535, 48).astype(np.uint16), (32, 1))  # (32, 48)
    d = tmp_path / "frames"
    png(d / "0.png", (ramp >> 8).astype(np.uint8))  # 8-bit grey
    png(d / "1.png", np.dstack([smooth(1)[0], np.full((32, 48), 128, np.uint8)]))  # RGBA
    Image.fromarray(ramp).save(d / "2.png")  # 16-bit grey
    for i in range(3):
        a, b = read_rgb(d / f"{i}.png"), FrameFolderReader._read(d / f"{i}.png")
        assert a.shape == b.shape == (32, 48, 3) and a.dtype == b.dtype == np.uint8
        assert np.array_equal(a, b), i  # PIL and OpenCV readers agree
    assert np.array_equal(read_rgb(d / "2.png")[..., 0], (ramp >> 8).astype(np.uint8))  # high byte, not clipped
    segment(capsys, d, "-o", tmp_path / "o.mp4", "--weights", weights)
    assert len(read_video_frames(tmp_path / "o.mp4")[0]) == 3


def test_weights_of_another_class_count_or_missing(tmp_path, video, capsys):
    from evss.checkpoint import save_model
    from evss.config import build_model, preset
    odd = save_model(tmp_path / "odd.safetensors", build_model(preset("tiny", num_classes=5)), preset("tiny"))
    fails(capsys, ["segment", video, "-o", tmp_path / "o.mp4", "--weights", odd], "odd.safetensors does not fit",
          "shape mismatches", "backbone.logits.conv.weight: checkpoint (5, 16, 1, 1) vs model (11, 16, 1, 1)")
    fails(capsys, ["segment", video, "-o", tmp_path / "o.mp4", "--weights", tmp_path / "nope.safetensors"],
          "nope.safetensors", "no such file")


def test_checkpoint_with_a_bad_embedded_config(tmp_path, video, capsys):
    from safetensors.torch import save_file

    from evss.config import build_model, preset, to_dict
    state = {k: v.contiguous() for k, v in build_model(preset("tiny")).state_dict().items()}
    config = to_dict(preset("tiny"))
    config["backbone"]["depth"] = 3
    save_file(state, str(tmp_path / "m.safetensors"),
              metadata={"format": "evss-checkpoint", "config": json.dumps(config)})
    fails(capsys, ["segment", video, "-o", tmp_path / "o.mp4", "--weights", tmp_path / "m.safetensors"],
          "m.safetensors: bad embedded config: config.backbone: unknown key(s) ['depth']")


def test_label_folder_never_replaces_foreign_files_or_the_input(tmp_path, weights, capsys):
    d = tmp_path / "frames"
    for i, f in enumerate(smooth(2)):
        png(d / f"{i:06d}.png", f)
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep me")
    fails(capsys, ["segment", d, "-o", tmp_path / "o.mp4", "--weights", weights, "--save-labels", mine],
          f"--save-labels {mine}: the folder holds 'notes.txt'")
    fails(capsys, ["segment", d, "-o", tmp_path / "o.mp4", "--weights", weights, "--save-labels", d],
          "the folder would hold the input")
    fails(capsys, ["segment", d, "-o", mine / "o.mp4", "--weights", weights, "--save-maps", mine],
          "the folder would hold the output video")
    assert (mine / "notes.txt").read_text() == "keep me" and len(list(d.iterdir())) == 2


# ---- evss train: configs and dataset trees --------------------------------------------------------

def test_train_config_unknown_key_wrong_type_and_not_json(tmp_path, capsys):
    (tmp_path / "a.json").write_text(json.dumps({"stage": "backbone", "stpes": 10}))
    (tmp_path / "b.json").write_text(json.dumps({"stage": "backbone", "steps": "ten"}))
    (tmp_path / "c.json").write_text("{steps: 10")
    (tmp_path / "d.json").write_text(json.dumps({"stage": "backbone", "crop_size": [64, "x"]}))
    fails(capsys, ["train", "backbone", "--config", tmp_path / "a.json"], "a.json", "unknown key(s) ['stpes']")
    fails(capsys, ["train", "backbone", "--config", tmp_path / "b.json"], "b.json.steps: expected int, got str 'ten'")
    fails(capsys, ["train", "backbone", "--config", tmp_path / "c.json"], "c.json: not valid JSON")
    fails(capsys, ["train", "backbone", "--config", tmp_path / "d.json"], "d.json.crop_size[1]: expected int")
    fails(capsys, ["train", "backbone", "--config", tmp_path / "missing.json"], "missing.json: no such file")


def test_model_config_with_unknown_key_or_impossible_value(tmp_path, capsys):
    (tmp_path / "m.json").write_text(json.dumps({"preset": "tiny", "flow": {"widht": 2}}))
    (tmp_path / "w.json").write_text(json.dumps({"preset": "tiny", "backbone": {"width": 1e9}}))
    fails(capsys, ["train", "backbone", "--model", tmp_path / "m.json", "--out", tmp_path / "r"],
          "m.json.flow: unknown key(s) ['widht']")
    fails(capsys, ["train", "backbone", "--model", tmp_path / "w.json", "--out", tmp_path / "r"],
          "w.json: config 'tiny': backbone.width must be in (0, 2.0]")


def camvid_tree(root: Path, n: int = 2, label_value: int = 3) -> Path:
    for i in range(n):
        png(root / "train" / "images" / f"0001TP_{i + 1:06d}.png", smooth(1, 64, 128, seed=i)[0])
        png(root / "train" / "labels" / f"0001TP_{i + 1:06d}.png", np.full((64, 128), label_value, np.uint8))
    return root


def test_camvid_tree_with_a_missing_label(tmp_path, capsys):
    root = camvid_tree(tmp_path / "camvid")
    (root / "train" / "labels" / "0001TP_000002.png").unlink()
    fails(capsys, ["train", "backbone", "--data", "camvid", "--data-root", root, "--out", tmp_path / "r", *TINY_TRAIN],
          "missing label for", "0001TP_000002.png")


@pytest.mark.parametrize("workers", ["0", "1"])
def test_label_ids_outside_the_class_set_with_and_without_workers(tmp_path, capsys, workers):
    root = camvid_tree(tmp_path / "camvid", label_value=12)
    line = fails(capsys, ["train", "backbone", "--data", "camvid", "--data-root", root, "--out", tmp_path / "r",
                          "--workers", workers, *TINY_TRAIN], "has ids 12 outside CamVid-11")
    assert "DataLoader worker" not in line


def test_cityscapes_tree_with_a_missing_frame(tmp_path, capsys):
    city = "aachen"
    frames = tmp_path / "cs" / "leftImg8bit_sequence" / "train" / city
    labels = tmp_path / "cs" / "gtFine" / "train" / city
    png(labels / f"{city}_000000_000019_gtFine_labelTrainIds.png", np.zeros((64, 128), np.uint8))
    for n in range(30):
        if n != 7:
            png(frames / f"{city}_000000_{n:06d}_leftImg8bit.png", np.zeros((64, 128, 3), np.uint8))
    fails(capsys, ["train", "backbone", "--data", "cityscapes", "--data-root", tmp_path / "cs", "--out",
                   tmp_path / "r", *TINY_TRAIN], "missing frame", f"{city}_000000_000007_leftImg8bit.png")


def synth_tree(root: Path) -> Path:
    from evss.data.synthdrive import SynthDriveConfig, write_dataset
    write_dataset(root, clips=1, seed=0, config=SynthDriveConfig(height=64, width=128, frames=2), progress=False)
    return root


def test_synthdrive_manifest_cannot_point_outside_its_folder(tmp_path, capsys):
    root = synth_tree(tmp_path / "sd")
    manifest = json.loads((root / "manifest.json").read_text())
    (tmp_path / "elsewhere").mkdir()
    for name, why in (("../elsewhere", "climbs out of"), (str(tmp_path / "elsewhere"), "is absolute")):
        manifest["clips"][0]["name"] = name
        (root / "manifest.json").write_text(json.dumps(manifest))
        fails(capsys, ["train", "backbone", "--data-root", root, "--out", tmp_path / "r", *TINY_TRAIN],
              "manifest.json", why)


def test_synthdrive_missing_frame_and_bad_label(tmp_path, capsys):
    root = synth_tree(tmp_path / "sd")
    png(root / "clip_0000" / "labels" / "000001.png", np.full((64, 128), 40, np.uint8))
    fails(capsys, ["train", "backbone", "--data-root", root, "--out", tmp_path / "r1", *TINY_TRAIN, "--steps", "4",
                   "--batch-size", "2"], "000001.png has ids 40 outside")
    (root / "clip_0000" / "frames" / "000000.png").unlink()
    fails(capsys, ["train", "backbone", "--data-root", root, "--out", tmp_path / "r2", *TINY_TRAIN, "--steps", "4",
                   "--batch-size", "2"], "missing image file", "000000.png")


def test_teacher_of_another_class_count_names_the_shapes(tmp_path, capsys):
    from evss.checkpoint import save_model
    from evss.config import build_model, preset
    five = preset("tiny", num_classes=5)
    teacher = save_model(tmp_path / "t5.safetensors", build_model(five), five)
    fails(capsys, ["train", "evss", "--teacher", teacher, "--out", tmp_path / "r", *TINY_TRAIN],
          "--teacher", "t5.safetensors does not fit",
          "logits.conv.weight: checkpoint (5, 16, 1, 1) vs model (11, 16, 1, 1)")


class _Evil:
    def __reduce__(self):
        return (os.system, ("echo pwned > pwned.txt",))


def test_resume_refuses_an_unsafe_or_damaged_state_file(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    run = tmp_path / "r"
    run.mkdir()
    (run / "last.state.pt").write_bytes(pickle.dumps({"format": "evss-train-state", "optimizer": _Evil()}))
    fails(capsys, ["train", "backbone", "--resume", "--out", run, *TINY_TRAIN], "last.state.pt: refused to load",
          "unsafe to unpickle")
    assert not (tmp_path / "pwned.txt").exists()
    (run / "last.state.pt").write_bytes(np.random.default_rng(0).bytes(300))  # seeded: the same bytes each run
    fails(capsys, ["train", "backbone", "--resume", "--out", run, *TINY_TRAIN], "last.state.pt: refused to load",
          "damaged")
    torch.save({"format": "evss-train-state", "step": "3"}, run / "last.state.pt")
    fails(capsys, ["train", "backbone", "--resume", "--out", run, *TINY_TRAIN], "a damaged training state ('step'")


# ---- evss eval, synth, convert -----------------------------------------------------------------------

def test_eval_bad_weights_and_roots(tmp_path, weights, capsys):
    fails(capsys, ["eval", "--weights", tmp_path / "nope.safetensors"], "nope.safetensors", "no such file")
    fails(capsys, ["eval", "--weights", weights, "--root", tmp_path / "nodir", "--costs-size", ""],
          "no manifest.json in", "nodir")
    fails(capsys, ["eval", "--weights", weights, "--data", "camvid", "--root", tmp_path / "nodir", "--costs-size", ""],
          "CamVid root", "nodir")
    root = camvid_tree(tmp_path / "camvid")
    (root / "val").mkdir()
    fails(capsys, ["eval", "--weights", weights, "--data", "camvid", "--root", root, "--costs-size", ""],
          "CamVid val images folder not found")


def test_synth_bad_outputs_and_sizes(tmp_path, capsys):
    (tmp_path / "file").write_text("x")
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "thesis.tex").write_text("keep me")
    fails(capsys, ["synth", "--out", tmp_path / "file", "--clips", "1"], "file exists and is not a folder")
    fails(capsys, ["synth", "--out", tmp_path / "mine", "--clips", "1"], "mine is not empty and is not a SynthDrive")
    fails(capsys, ["synth", "--out", tmp_path / "o", "--size", "8x8"], "at least 16x16, got 8x8")
    fails(capsys, ["synth", "--out", tmp_path / "o", "--clips", "0"], "clips must be at least 1, got 0")
    assert (tmp_path / "mine" / "thesis.tex").read_text() == "keep me"


def test_convert_refuses_code_junk_unknown_keys_and_bad_outputs(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with open(tmp_path / "evil.pth", "wb") as f:
        pickle.dump({"state_dict": _Evil()}, f)
    fails(capsys, ["convert", tmp_path / "evil.pth", "-o", tmp_path / "x.safetensors"],
          "evil.pth: refused to load", "unsafe to unpickle")
    assert not (tmp_path / "pwned.txt").exists()
    rng = np.random.default_rng(0)  # seeded: the same bytes each run
    for junk in (rng.bytes(1000), b"PK\x03\x04" + rng.bytes(1000)):  # random bytes, a damaged zip container
        (tmp_path / "junk.pth").write_bytes(junk)
        fails(capsys, ["convert", tmp_path / "junk.pth", "-o", tmp_path / "x.safetensors"],
              "junk.pth: refused to load: not a readable PyTorch checkpoint of plain tensors; it is damaged")
    fails(capsys, ["convert", tmp_path / "missing.pth", "-o", tmp_path / "x.safetensors"], "missing.pth: no such file")
    torch.save({"encoder.weight": torch.zeros(2)}, tmp_path / "other.pth")
    fails(capsys, ["convert", tmp_path / "other.pth", "-o", tmp_path / "x.safetensors"],
          "keys look like none of CSRNet, FlowNet")
    from evss.config import build_model, preset
    csrnet = {k: v for k, v in build_model(preset("official", num_classes=11)).backbone.state_dict().items()}
    torch.save(csrnet, tmp_path / "csrnet.pth")
    (tmp_path / "taken").mkdir()
    fails(capsys, ["convert", tmp_path / "csrnet.pth", "-o", tmp_path / "taken"], "taken: cannot write")
    assert not list(tmp_path.glob(".taken*")) and not (tmp_path / "x.safetensors").exists()


# ---- what a shell sees ----------------------------------------------------------------------------

def test_real_processes_exit_2_with_one_line(tmp_path):
    with open(tmp_path / "evil.pth", "wb") as f:
        pickle.dump(_Evil(), f)
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    for argv, needle in ((["segment", str(tmp_path / "nope.mp4"), "-o", str(tmp_path / "o.mp4")], "nope.mp4: no such"),
                         (["convert", str(tmp_path / "evil.pth"), "-o", str(tmp_path / "x.safetensors")], "refused")):
        r = subprocess.run([sys.executable, "-m", "evss.cli", *argv], capture_output=True, text=True, env=env,
                           cwd=tmp_path, timeout=120)
        assert r.returncode == 2, r.stderr
        assert r.stderr.count("\n") == 1 and needle in r.stderr and "Traceback" not in r.stderr, r.stderr
    assert not (tmp_path / "pwned.txt").exists()
