"""Property-based fuzzing of every reader of untrusted bytes: random and mutated inputs may only
fail with the product's own errors (``EvssError`` subclasses), never with anything else.

Targets: the frame reader (video file bytes; image file bytes through a frame folder), the label
loaders, the config parsers (model config JSON, TrainConfig files), the checkpoint loaders
(``load_model`` on safetensors bytes, ``read_official`` on .pth bytes), the training-state
loader, the training data check (file headers; a tree with a fuzzed frame and label), the memory
budget (``--max-memory`` text, any frame size: a plan or an EvssError) and the mid-run handling of
unreadable training samples (replaced, counted, stopped past ``--max-bad-files``). Inputs are random
bytes or valid files mutated by flipping, overwriting, truncating,
inserting, deleting and duplicating bytes (half the edits land in the first 512 bytes, where the
headers are).

CI runs ``EVSS_FUZZ_EXAMPLES`` (default 60) examples per target with a fixed derandomised seed
(so CI does not flake); ``tools/fuzz.py`` runs 2000 per target with fresh randomness and
reports the outcomes (``EVSS_FUZZ_REPORT=path.json`` writes them).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections import Counter, defaultdict
from pathlib import Path

import av
import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from evss.errors import EvssError

EXAMPLES = int(os.environ.get("EVSS_FUZZ_EXAMPLES", "60"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None, derandomize=EXAMPLES <= 60, database=None,
                suppress_health_check=list(HealthCheck), print_blob=True)
OUTCOMES: dict[str, Counter] = defaultdict(Counter)
WORK = Path(tempfile.mkdtemp(prefix="evss-fuzz-"))


def check(target: str, run) -> None:
    """Run one input; count its outcome; anything but an EvssError fails the test."""
    try:
        run()
    except EvssError as exc:
        OUTCOMES[target][type(exc).__name__] += 1
        assert "\n" not in str(exc).strip(), f"a multi-line message: {exc}"
        return
    except BaseException as exc:
        OUTCOMES[target][f"CRASH {type(exc).__name__}"] += 1
        raise
    OUTCOMES[target]["ok"] += 1


@pytest.fixture(scope="module", autouse=True)
def report():
    yield
    path = os.environ.get("EVSS_FUZZ_REPORT")
    if path:
        Path(path).write_text(json.dumps({k: dict(v) for k, v in OUTCOMES.items()}, indent=1))
    shutil.rmtree(WORK, ignore_errors=True)


# ---- valid seeds, made once ------------------------------------------------------------------------

def _frames(n: int = 6, h: int = 32, w: int = 48) -> np.ndarray:
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, (n, h, w, 3), dtype=np.uint8)


def _video(suffix: str, codec: str, pix_fmt: str) -> bytes:
    path = WORK / f"seed{suffix}"
    with av.open(str(path), "w") as c:
        s = c.add_stream(codec, rate=25)
        s.height, s.width, s.pix_fmt = 32, 48, pix_fmt
        for f in _frames():
            for p in s.encode(av.VideoFrame.from_ndarray(f, format="rgb24")):
                c.mux(p)
        for p in s.encode(None):
            c.mux(p)
    return path.read_bytes()


def _image(array: np.ndarray, fmt: str, **kw) -> bytes:
    path = WORK / f"seed.{fmt}"
    Image.fromarray(array).save(path, format=fmt, **kw)
    return path.read_bytes()


def _torch_bytes(obj) -> bytes:
    path = WORK / "seed.pt"
    torch.save(obj, path)
    return path.read_bytes()


VIDEOS = [_video(".mp4", "libx264", "yuv420p"), _video(".mkv", "libx264", "yuv420p"),
          _video(".avi", "mjpeg", "yuvj420p")]
IMAGES = [_image(_frames(1)[0], "PNG"), _image(_frames(1)[0], "JPEG"),
          _image(np.dstack([_frames(1)[0], np.full((32, 48), 9, np.uint8)]), "PNG"),
          _image(np.arange(32 * 48, dtype=np.uint16).reshape(32, 48) * 40, "PNG")]
LABELS = [_image((np.arange(32 * 48).reshape(32, 48) % 11).astype(np.uint8), "PNG"),
          _image(np.arange(32 * 48, dtype=np.uint16).reshape(32, 48) % 19, "PNG"),
          _image((np.arange(32 * 48).reshape(32, 48) % 11).astype(np.uint8), "PNG", bits=4)]


def _checkpoint() -> bytes:
    from evss.checkpoint import save_model
    from evss.config import build_model, preset
    torch.manual_seed(0)
    return save_model(WORK / "seed.safetensors", build_model(preset("tiny")), preset("tiny")).read_bytes()


CHECKPOINTS = [_checkpoint()]
OFFICIAL = [_torch_bytes({"logits.conv.weight": torch.randn(11, 8, 1, 1), "logits.conv.bias": torch.zeros(11),
                          "backbone.conv1.weight": torch.randn(4, 3, 3, 3)}),
            _torch_bytes({"state_dict": {"module.predict_flow2.weight": torch.randn(2, 8, 3, 3)}})]
STATES = [_torch_bytes({"format": "evss-train-state", "version": 2, "step": 3, "stage": "backbone",
                        "model": {"w": torch.zeros(3)}, "optimizer": {"state": {}, "param_groups": []},
                        "scheduler": {"last_epoch": 3}, "scaler": {},
                        "rng": {"torch": torch.zeros(4, dtype=torch.uint8)},
                        "config": json.dumps({"stage": "backbone"}), "world_size": 1})]


@st.composite
def mutated(draw, seeds: list[bytes]) -> bytes:
    data = bytearray(draw(st.sampled_from(seeds)))
    for _ in range(draw(st.integers(1, 6))):
        if not data:
            break
        n = len(data)
        pos = draw(st.integers(0, min(n, 512) - 1) | st.integers(0, n - 1))
        op = draw(st.sampled_from(("flip", "set", "truncate", "insert", "delete", "duplicate")))
        if op == "flip":
            data[pos] ^= 1 << draw(st.integers(0, 7))
        elif op == "set":
            data[pos] = draw(st.sampled_from((0, 0xFF, 0x7F, 0x80, draw(st.integers(0, 255)))))
        elif op == "truncate":
            del data[pos:]
        elif op == "insert":
            data[pos:pos] = draw(st.binary(min_size=1, max_size=64))
        elif op == "delete":
            del data[pos:pos + draw(st.integers(1, 64))]
        else:
            size = draw(st.integers(1, 256))
            data[pos:pos] = data[pos:pos + size]
    return bytes(data)


def inputs(seeds: list[bytes]):
    return st.binary(max_size=2048) | mutated(seeds) | mutated(seeds)  # mostly mutations


def write(name: str, data: bytes) -> Path:
    path = WORK / name
    path.write_bytes(data)
    return path


# ---- targets -------------------------------------------------------------------------------------

@FUZZ
@given(data=inputs(VIDEOS), suffix=st.sampled_from((".mp4", ".mkv", ".avi")),
       on_error=st.sampled_from(("stop", "skip")))
def test_video_bytes(data, suffix, on_error):
    from evss.media import open_video

    def run():
        with open_video(write(f"in{suffix}", data), on_error=on_error) as video:
            for i, frame in enumerate(video):
                assert frame.image is None or frame.image.shape == (video.info.height, video.info.width, 3)
                if i >= 60:
                    break
    check("video file", run)


@FUZZ
@given(data=inputs(IMAGES), on_error=st.sampled_from(("stop", "skip")))
def test_image_bytes_in_a_frame_folder(data, on_error):
    from evss.data.sources import read_rgb
    from evss.media import open_video
    folder = WORK / "frames"
    folder.mkdir(exist_ok=True)
    (folder / "0.png").write_bytes(IMAGES[0])  # a good first frame, then the fuzzed one
    (folder / "1.png").write_bytes(data)

    def run():
        with open_video(folder, on_error=on_error) as video:
            assert len(list(video)) == 2
    check("image file (frame folder)", run)
    check("image file (read_rgb)", lambda: read_rgb(folder / "1.png").shape)


@FUZZ
@given(data=inputs(LABELS))
def test_label_bytes(data):
    from evss.data.camvid import read_camvid_label
    from evss.data.cityscapes import read_cityscapes_label
    from evss.data.synthdrive import read_label
    path = write("label.png", data)
    for reader in (read_camvid_label, read_cityscapes_label, read_label):
        check("label file", lambda reader=reader: reader(path))


def _json_values():
    leaves = (st.none() | st.booleans() | st.integers(-2**70, 2**70) | st.floats(allow_nan=True)
              | st.text(max_size=12) | st.sampled_from(("tiny", "light", "paper", "camvid", "cityscapes", "relu")))
    return st.recursive(leaves, lambda c: (st.lists(c, max_size=4)
                                           | st.dictionaries(st.text(max_size=12), c, max_size=4)), max_leaves=16)


@st.composite
def mutated_dict(draw, base: dict) -> dict:
    """``base`` with a few keys replaced, deleted or added, at any depth."""
    data = json.loads(json.dumps(base))
    for _ in range(draw(st.integers(1, 4))):
        node = data
        while True:
            keys = sorted(node)
            key = draw(st.sampled_from(keys)) if keys else None
            if key is not None and isinstance(node[key], dict) and draw(st.booleans()):
                node = node[key]
                continue
            break
        op = draw(st.sampled_from(("replace", "delete", "add")))
        if op == "replace" and key is not None:
            node[key] = draw(_json_values())
        elif op == "delete" and key is not None:
            del node[key]
        else:
            node[draw(st.text(max_size=8))] = draw(_json_values())
    return data


def _model_configs():
    from evss.config import preset, to_dict
    tiny = to_dict(preset("tiny"))
    return st.one_of(_json_values(), mutated_dict(tiny), mutated_dict({"preset": "tiny", "num_classes": 11}))


@FUZZ
@given(data=_model_configs())
def test_model_config_json(data):
    from evss.config import config_from_json
    check("model config", lambda: config_from_json(data, where="fuzz"))


def _train_config_bytes():
    from evss.train import TrainConfig, train_config_to_dict
    base = json.loads(json.dumps(train_config_to_dict(TrainConfig(stage="backbone"))))
    as_bytes = st.one_of(_json_values(), mutated_dict(base)).map(lambda d: json.dumps(d).encode())
    return as_bytes | inputs([json.dumps(base).encode()])


@FUZZ
@given(data=_train_config_bytes())
def test_train_config_file(data):
    from evss.train import load_train_config
    check("train config file", lambda: load_train_config(write("train.json", data)))


@FUZZ
@given(data=inputs(CHECKPOINTS))
def test_checkpoint_safetensors_bytes(data):
    from evss.checkpoint import load_model
    check("checkpoint (load_model)", lambda: load_model(write("m.safetensors", data)))


@FUZZ
@given(data=inputs(OFFICIAL))
def test_official_pth_bytes(data):
    from evss.checkpoint import read_official, split_official

    def run():
        path = write("m.pth", data)
        split_official(read_official(path), str(path))
    check("official .pth (read_official)", run)


@FUZZ
@given(data=inputs(STATES))
def test_training_state_bytes(data):
    from evss.train import read_training_state
    check("training state", lambda: read_training_state(write("last.state.pt", data)))


# ---- the memory budget and bad training files (issue 16) -------------------------------------------

@FUZZ
@given(data=inputs(IMAGES + LABELS), what=st.sampled_from(("image", "label")))
def test_dataset_check_header_bytes(data, what):
    from evss.data.validate import header

    def run():
        h, w, _ = header(write("checked.png", data), what)
        assert h >= 1 and w >= 1
    check("dataset check (file header)", run)


@FUZZ
@given(frame=inputs(IMAGES), label=inputs(LABELS), sample=st.integers(0, 3))
def test_dataset_check_of_a_tree(frame, label, sample):
    """check_files over a two-frame sequence whose second frame and label are fuzzed: it collects
    (never raises); report_bad_files turns what it found into one DataError."""
    from evss.data.camvid import read_camvid_label
    from evss.data.sources import FileSequenceSource, FrameFile, FrameSequence
    from evss.data.validate import check_files, report_bad_files
    tree = WORK / "tree"
    tree.mkdir(exist_ok=True)
    (tree / "0.png").write_bytes(IMAGES[0])
    (tree / "0_L.png").write_bytes(LABELS[0])
    (tree / "1.png").write_bytes(frame)
    (tree / "1_L.png").write_bytes(label)

    class Source(FileSequenceSource):
        def read_label(self, path):
            return read_camvid_label(path)

    source = Source([FrameSequence("s", (FrameFile(0, tree / "0.png", tree / "0_L.png"),
                                         FrameFile(1, tree / "1.png", tree / "1_L.png")))])

    def run():
        result = check_files(source, sample=sample)
        assert result.files >= 2 and result.decoded <= 2 * sample
        report_bad_files(result, where="fuzz", print_line=lambda line: None)
    check("dataset check (tree)", run)


@FUZZ
@given(h=st.integers(1, 200_000), w=st.integers(1, 200_000), model_px=st.floats(1, 5000),
       held=st.integers(0, 2 ** 36), writing=st.integers(0, 2 ** 36), overlapped=st.booleans(),
       budget=st.sampled_from(("100M", "455M", "1G", "3G", "64G", "1.5g", "0", "x", "", "2T", "12e")),
       downscale=st.booleans())
def test_memory_plan_sizes_and_budgets(h, w, model_px, held, writing, overlapped, budget, downscale):
    """Any frame size and budget: a plan that fits (estimate within the budget, same aspect ratio,
    never larger than the input), or an EvssError that names what to pass."""
    from evss import memory

    def run():
        b = memory.Budget(memory.parse_bytes(budget), f"--max-memory {budget}")
        p = memory.plan(height=h, width=w, model_px=model_px,
                        buffers=memory.Buffers(held=held, writing=writing, overlapped=overlapped), budget=b,
                        allow_downscale=downscale, what="fuzz")
        assert p.estimate <= b.bytes and 1 <= p.height <= h and 1 <= p.width <= w
        assert p.downscaled or (p.height, p.width) == (h, w)
        vh, vw = memory.h264_size(h, w)
        assert memory.h264_fits(vh, vw) and vh <= max(h, 2) and vw <= max(w, 2)
    check("memory plan", run)


@FUZZ
@given(bad=st.sets(st.integers(0, 11), max_size=12), batch=st.integers(1, 5), steps=st.integers(1, 8),
       max_bad=st.integers(0, 4))
def test_bad_samples_mid_run(bad, batch, steps, max_bad):
    """ByPosition + collate + skip_bad_items over a dataset whose items ``bad`` fail: every batch
    keeps its size while a readable stand-in exists; the run stops (DataError) only past ``max_bad``
    distinct bad files."""
    from evss.data.validate import BadItems, skip_bad_items
    from evss.errors import DataError
    from evss.train import ByPosition, collate

    class Items:
        def __len__(self):
            return 12

        def __getitem__(self, i):
            if i in bad:
                raise DataError(f"cannot read image {i}.png")
            return torch.full((2,), float(i))

    def run():
        view, seen = ByPosition(Items(), seed=0), {}
        for step in range(steps):
            out = collate([view[step * batch + j] for j in range(batch)])
            if isinstance(out, BadItems):
                out = skip_bad_items(out, seen, step=step + 1, max_bad_files=max_bad, distributed=False, warn=None,
                                     checkpoint=(Path("last.safetensors"), 0))
            if out is not None:
                assert out.shape[0] <= batch and not any(int(v) in bad for v in out[:, 0])
        assert len(seen) <= max_bad
    check("bad samples mid-run", run)
