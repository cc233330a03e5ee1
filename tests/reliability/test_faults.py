"""Faults injected into real runs: Ctrl-C and SIGKILL during `evss segment`, SIGKILL during training
and a crash between the two checkpoint files (then --resume), non-finite losses and poisoned batches.

The subprocess tests run the real CLI on a tiny model and tiny inputs; they take a few seconds each.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import av
import numpy as np
import pytest
import torch

from evss.cli import main
from evss.errors import EvssError
from evss.media import PartialFolder, numbered_pngs, write_video_frames

ENV = {**os.environ, "PYTHONWARNINGS": "ignore", "OMP_NUM_THREADS": "1"}


@pytest.fixture
def weights(tiny_weights) -> Path:
    return tiny_weights  # the vivid tiny model (conftest)


LONG = 2400  # frames: the tiny model runs ~250 frames/s, so a loaded parent still interrupts it in time


@pytest.fixture(scope="module")
def long_video(tmp_path_factory) -> Path:
    """LONG frames of a pattern moving 1 px per frame, 64x96: long enough to interrupt."""
    rng = np.random.default_rng(0)
    import cv2
    big = cv2.resize(rng.integers(0, 256, (10, 320, 3), dtype=np.uint8), (LONG + 96, 80),
                     interpolation=cv2.INTER_LINEAR)
    frames = (big[:64, t:t + 96] for t in range(LONG))
    return write_video_frames(tmp_path_factory.mktemp("long") / "long.mp4", frames)


class Progress:
    """Reads a child's stderr in a thread; ``frames`` is the latest tqdm count seen.

    ``wait_for`` blocks on a condition the reader notifies on every chunk (no sleeping), with a
    generous bound so that a child that hangs fails the test instead of the run.
    """

    def __init__(self, proc: subprocess.Popen) -> None:
        self.text, self.frames, self.ended = "", 0, False
        self.changed = threading.Condition()
        self.thread = threading.Thread(target=self._read, args=(proc,), daemon=True)
        self.thread.start()

    def _read(self, proc: subprocess.Popen) -> None:
        while chunk := proc.stderr.read1(4096) if hasattr(proc.stderr, "read1") else proc.stderr.read(1):
            with self.changed:
                self.text += chunk.decode(errors="replace")
                counts = re.findall(r"\| *(\d+)/\d+ \[", self.text[-400:])
                if counts:
                    self.frames = int(counts[-1])
                self.changed.notify_all()
        with self.changed:
            self.ended = True  # the child closed stderr: it exited
            self.changed.notify_all()

    def wait_for(self, proc: subprocess.Popen, frames: int, timeout: float = 300.0) -> None:
        with self.changed:
            done = self.changed.wait_for(lambda: self.frames >= frames or self.ended, timeout=timeout)
            assert done, f"no progress to {frames} frames in {timeout:.0f} s: {self.text[-500:]}"
            assert self.frames >= frames, f"the child ended before {frames} frames: {self.text[-2000:]}"


def start_segment(src: Path, out: Path, weights: Path, *extra) -> tuple[subprocess.Popen, Progress]:
    proc = subprocess.Popen([sys.executable, "-m", "evss.cli", "segment", str(src), "-o", str(out), "--weights",
                             str(weights), "--threads", "1", *map(str, extra)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=ENV, cwd=out.parent,
                            preexec_fn=default_sigint)
    return proc, Progress(proc)


def default_sigint() -> None:
    """In the child: Ctrl-C's default disposition. A test run started in the background by a shell
    inherits SIGINT ignored, and an ignored signal stays ignored across exec."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def count_frames(path: Path) -> int:
    with av.open(str(path)) as c:
        return sum(1 for _ in c.decode(video=0))


# ---- evss segment ---------------------------------------------------------------------------------

def test_sigint_finishes_a_playable_video_of_the_frames_done(tmp_path, long_video, weights):
    out, labels = tmp_path / "seg.mp4", tmp_path / "labels"
    proc, progress = start_segment(long_video, out, weights, "--save-labels", labels)
    progress.wait_for(proc, 15)
    proc.send_signal(signal.SIGINT)
    proc.wait(timeout=120)
    progress.thread.join(timeout=10)
    assert proc.returncode == 130, progress.text
    done = re.search(rf"interrupted: wrote a playable \S+ with the (\d+) frames done so far of {LONG}", progress.text)
    assert done, progress.text
    n = int(done.group(1))
    assert 15 <= n < LONG and "Traceback" not in progress.text
    assert count_frames(out) == n  # playable, and exactly the frames reported
    assert sorted(p.name for p in labels.iterdir()) == [f"{i:06d}.png" for i in range(n)]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["labels", "seg.mp4"]  # no temporary left


def test_sigkill_leaves_nothing_that_looks_complete(tmp_path, long_video, weights):
    out, labels = tmp_path / "seg.mp4", tmp_path / "labels"
    proc, progress = start_segment(long_video, out, weights, "--save-labels", labels)
    progress.wait_for(proc, 10)
    proc.kill()
    proc.wait(timeout=60)
    assert not out.exists() and not labels.exists()  # only hidden .partial names are left
    assert {p.name for p in tmp_path.iterdir()} <= {".seg.partial.mp4", ".labels.partial"}
    # the next run clears the stale partial folder and replaces an earlier, complete output
    labels.mkdir()
    (labels / "000000.png").write_bytes(b"from an earlier run")
    folder = PartialFolder(labels, owned=numbered_pngs, what="--save-labels")
    assert not any(folder.path.iterdir())
    (folder.path / "000000.png").write_bytes(b"new")
    folder.commit()
    assert (labels / "000000.png").read_bytes() == b"new"
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".labels")) == []


def test_an_error_midway_leaves_no_output_folder(tmp_path, weights, monkeypatch, capsys):
    from evss.segmenter import VideoSegmenter
    src = write_video_frames(tmp_path / "in.mp4", np.zeros((6, 32, 32, 3), np.uint8))
    step = VideoSegmenter.step

    def failing(self, frame):
        if self._index == 3:
            raise EvssError("simulated failure at frame 3")
        return step(self, frame)

    monkeypatch.setattr(VideoSegmenter, "step", failing)
    threads = torch.get_num_threads()
    rc = main(["segment", str(src), "-o", str(tmp_path / "o.mp4"), "--weights", str(weights), "-q", "--threads", "1",
               "--save-labels", str(tmp_path / "labels"), "--save-maps", str(tmp_path / "maps")])
    torch.set_num_threads(threads)
    assert rc == 2 and "simulated failure at frame 3" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.mp4"]


# ---- training --------------------------------------------------------------------------------------

TRAIN = ["train", "backbone", "--model", "tiny", "--synth-clips", "1", "--synth-frames", "4", "--synth-size",
         "64x128", "--crop", "64x128", "--batch-size", "2", "--steps", "8", "--checkpoint-every", "3",
         "--log-every", "1", "--lr", "1e-3", "--threads", "1", "--no-progress", "--no-tensorboard"]

# Runs the CLI in a child that SIGKILLs itself while computing the loss of step KILL_AT, i.e. in the
# middle of a step after the checkpoint of step 3 (and after steps 4.. were logged).
KILLER = textwrap.dedent("""
    import os, signal, sys
    import evss.losses as losses
    kill_at, calls, loss = int(sys.argv[1]), [0], losses.segmentation_loss
    def dying(*args, **kwargs):
        calls[0] += 1
        if calls[0] == kill_at:
            os.kill(os.getpid(), signal.SIGKILL)
        return loss(*args, **kwargs)
    losses.segmentation_loss = dying  # the training stages call it through the module
    from evss.cli import main
    sys.exit(main(sys.argv[2:]))
""")


def records(out: Path) -> list[dict]:
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    return [{k: v for k, v in r.items() if k != "seconds"} for r in rows]


def weights_of(path: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file
    return load_file(str(path))


def test_sigkill_then_resume_reproduces_the_uninterrupted_run(tmp_path):
    def run(*argv, killer: int | None = None) -> subprocess.CompletedProcess:
        cmd = ([sys.executable, "-c", KILLER, str(killer)] if killer else [sys.executable, "-m", "evss.cli"])
        return subprocess.run([*cmd, *map(str, argv)], capture_output=True, text=True, env=ENV, timeout=300,
                              cwd=tmp_path)

    whole = run(*TRAIN, "--out", tmp_path / "whole")
    assert whole.returncode == 0, whole.stderr
    killed = run(*TRAIN, "--out", tmp_path / "cut", killer=5)
    assert killed.returncode == -signal.SIGKILL
    assert max(r["step"] for r in records(tmp_path / "cut")) == 4  # logged past its checkpoint at step 3
    assert torch.load(tmp_path / "cut" / "last.state.pt", weights_only=True)["step"] == 3
    resumed = run(*TRAIN, "--out", tmp_path / "cut", "--resume")
    assert resumed.returncode == 0, resumed.stderr
    assert records(tmp_path / "cut") == records(tmp_path / "whole")  # same losses, each step once
    a, b = weights_of(tmp_path / "whole" / "last.safetensors"), weights_of(tmp_path / "cut" / "last.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert not list((tmp_path / "cut").glob(".*"))  # no temporary files


def test_crash_between_the_two_checkpoint_files_still_resumes(tmp_path, monkeypatch):
    """The state file (with the weights) is written first: a crash before the model file is
    replaced leaves a resumable run whose state is newer than last.safetensors."""
    from evss import checkpoint, train
    from evss.train import TrainConfig
    common = dict(stage="backbone", model="tiny", synth_clips=1, synth_frames=4, synth_size=(64, 128),
                  crop_size=(64, 128), batch_size=2, steps=6, checkpoint_every=2, log_every=1, lr=1e-3,
                  progress=False, tensorboard=False, threads=1)
    whole = train.main(TrainConfig(out_dir=str(tmp_path / "whole"), **common))
    save = checkpoint.save_model

    def crash_at_step_4(path, *args, **kwargs):
        if kwargs.get("extra", {}).get("step") == "4":
            raise KeyboardInterrupt  # stands in for a kill between the two atomic writes
        return save(path, *args, **kwargs)

    monkeypatch.setattr(checkpoint, "save_model", crash_at_step_4)
    with pytest.raises(KeyboardInterrupt):
        train.main(TrainConfig(out_dir=str(tmp_path / "cut"), **common))
    monkeypatch.setattr(checkpoint, "save_model", save)
    from evss.checkpoint import read_metadata
    assert read_metadata(tmp_path / "cut" / "last.safetensors")["step"] == "2"
    assert torch.load(tmp_path / "cut" / "last.state.pt", weights_only=True)["step"] == 4
    rest = train.main(TrainConfig(out_dir=str(tmp_path / "cut"), resume=True, **common))
    assert [r["step"] for r in rest.losses] == [5, 6]
    assert records(tmp_path / "cut") == records(tmp_path / "whole")
    for (k, a), b in zip(whole.model.state_dict().items(), rest.model.state_dict().values()):
        assert torch.equal(a, b), k


def test_non_finite_losses_through_the_cli_keep_the_last_good_checkpoint(tmp_path, monkeypatch, capsys):
    from evss import losses
    from evss.checkpoint import load_model, read_metadata
    loss, calls = losses.segmentation_loss, []

    def poisoned(*args, **kwargs):
        out = loss(*args, **kwargs)
        calls.append(1)
        return {k: v * float("nan") for k, v in out.items()} if len(calls) >= 3 else out

    monkeypatch.setattr(losses, "segmentation_loss", poisoned)
    argv = [a if a != "8" else "20" for a in TRAIN]  # --steps 20
    rc = main([*argv, "--checkpoint-every", "2", "--max-bad-steps", "3", "--out", str(tmp_path / "r")])
    err = capsys.readouterr().err
    line = [x for x in err.splitlines() if x.startswith("evss train: error:")]
    assert rc == 2 and len(line) == 1 and "Traceback" not in err, err
    assert "3 non-finite losses in a row (last at step 5)" in line[0] and "(step 2)" in line[0]
    assert err.count("non-finite loss (") == 3  # one warning per skipped step
    assert read_metadata(tmp_path / "r" / "last.safetensors")["step"] == "2"
    model, _ = load_model(tmp_path / "r" / "last.safetensors")
    assert all(torch.isfinite(t).all() for t in model.state_dict().values() if t.is_floating_point())


def test_a_poisoned_batch_leaves_no_trace_in_batchnorm(tmp_path, monkeypatch):
    """NaN pixels make the loss non-finite; the step is skipped and BatchNorm's running statistics,
    which the forward pass already updated, are put back."""
    from evss import train
    from evss.train import TrainConfig
    get = train.ByPosition.__getitem__

    def poisoned(self, position):
        item = get(self, position)
        if position // 2 == 2:  # both samples of step 3
            item = {**item, "image": torch.full_like(item["image"], float("nan"))}
        return item

    monkeypatch.setattr(train.ByPosition, "__getitem__", poisoned)
    result = train.main(TrainConfig(stage="backbone", model="tiny", synth_clips=1, synth_frames=4,
                                    synth_size=(64, 128), crop_size=(64, 128), batch_size=2, steps=5,
                                    checkpoint_every=5, log_every=1, progress=False, tensorboard=False, threads=1,
                                    out_dir=str(tmp_path)))
    assert [r["skipped"] for r in result.losses] == [0.0, 0.0, 1.0, 0.0, 0.0]
    buffers = dict(result.model.backbone.named_buffers())
    assert all(torch.isfinite(b).all() for b in buffers.values() if b.is_floating_point())
