"""Training data with bad files: every bad file reported at once before step one; a file that fails
mid-run skipped and counted, the run stopped past --max-bad-files with its checkpoint intact; and
crops over the memory budget refused up front."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from evss.cli import main
from evss.data import validate
from evss.errors import DataError

TINY = ["--model", "tiny", "--crop", "64x128", "--batch-size", "2", "--threads", "1", "--no-progress",
        "--no-tensorboard"]


def synth_tree(root: Path, frames: int = 4) -> Path:
    from evss.data.synthdrive import SynthDriveConfig, write_dataset
    write_dataset(root, clips=1, seed=0, config=SynthDriveConfig(height=64, width=128, frames=frames), progress=False)
    return root


def truncate(path: Path, keep: float = 0.5) -> Path:
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])
    return path


def train(capsys, *args) -> tuple[int, str]:
    threads = torch.get_num_threads()
    try:
        rc = main(["train", "backbone", *map(str, args)])
    finally:
        torch.set_num_threads(threads)
    err = capsys.readouterr().err
    assert "Traceback" not in err, err
    return rc, err


def test_header_check_catches_a_truncated_png_without_decoding_it(tmp_path):
    good = tmp_path / "good.png"
    Image.fromarray(np.zeros((40, 60, 3), np.uint8) + 7).save(good)
    assert validate.header(good) == (40, 60, "RGB")
    (tmp_path / "bad.png").write_bytes(good.read_bytes())
    bad = truncate(tmp_path / "bad.png")
    with pytest.raises(DataError, match="bad.png: damaged or not an image"):
        validate.header(bad)
    jpg = tmp_path / "cut.jpg"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(jpg)
    truncate(jpg, 0.7)
    with pytest.raises(DataError, match="end-of-image marker"):
        validate.header(jpg)
    with pytest.raises(DataError, match="missing label file"):
        validate.header(tmp_path / "nope.png", "label")


def test_every_bad_file_of_a_tree_is_reported_at_once(tmp_path):
    from evss.train import synthdrive_folder
    root = synth_tree(tmp_path / "sd")
    clip = root / "clip_0000"
    truncate(clip / "frames" / "000001.png")
    Image.fromarray(np.zeros((32, 32), np.uint8)).save(clip / "labels" / "000002.png")  # the wrong size
    Image.fromarray(np.zeros((64, 128, 3), np.uint8)).save(clip / "labels" / "000003.png")  # RGB, not ids
    check = validate.check_files(synthdrive_folder(root))
    assert check.files == 7 and len(check.bad) == 3, check.bad
    assert "000001.png: damaged" in check.bad[0]
    assert "000002.png: a 32x32 label for the 128x64 frame" in check.bad[1]
    assert "000003.png: a label with RGB pixels" in check.bad[2]
    lines: list[str] = []
    with pytest.raises(DataError, match="3 bad files of 7 checked") as exc:
        validate.report_bad_files(check, where="the tree", print_line=lines.append)
    assert len(lines) == 3 and "\n" not in str(exc.value) and "nothing was trained" in str(exc.value)


def test_training_stops_before_step_one_naming_every_bad_file(tmp_path, capsys):
    root = synth_tree(tmp_path / "sd")
    truncate(root / "clip_0000" / "frames" / "000001.png")
    truncate(root / "clip_0000" / "labels" / "000003.png", 0.3)
    out = tmp_path / "run"
    rc, err = train(capsys, "--data-root", root, "--out", out, "--steps", "2", *TINY)
    line = next(line for line in err.splitlines() if line.startswith("evss train: error:"))
    assert rc == 2 and "2 bad files of 7 checked" in line, err
    assert "frames/000001.png" in line and "labels/000003.png" in line and "nothing was trained" in line
    assert err.count("bad file:") == 2 and not (out / "last.state.pt").exists()


def test_a_file_that_fails_mid_run_is_skipped_and_counted(tmp_path, capsys, monkeypatch):
    root = synth_tree(tmp_path / "sd")
    truncate(root / "clip_0000" / "frames" / "000002.png")
    # as if the file broke after the check (or the check could not see it)
    monkeypatch.setattr(validate, "check_files", lambda *a, **k: validate.DataCheck())
    out = tmp_path / "run"
    rc, err = train(capsys, "--data-root", root, "--out", out, "--steps", "8", "--max-bad-files", "1", *TINY)
    assert rc == 0, err
    warnings = [line for line in err.splitlines() if "skipped an unreadable sample" in line]
    assert len(warnings) == 1 and "000002.png" in warnings[0] and "1 bad file so far" in warnings[0]
    assert (out / "last.safetensors").exists()


def test_past_max_bad_files_the_run_stops_with_its_checkpoint_intact(tmp_path, capsys, monkeypatch):
    from evss.checkpoint import load_model
    root = synth_tree(tmp_path / "sd", frames=6)
    truncate(root / "clip_0000" / "frames" / "000004.png")
    monkeypatch.setattr(validate, "check_files", lambda *a, **k: validate.DataCheck())
    out = tmp_path / "run"
    rc, err = train(capsys, "--data-root", root, "--out", out, "--steps", "12", "--checkpoint-every", "1",
                    "--max-bad-files", "0", *TINY)
    line = next(line for line in err.splitlines() if line.startswith("evss train: error:"))
    assert rc == 2 and "1 file failed during training, more than --max-bad-files 0" in line, err
    assert "000004.png" in line and "stopped" in line
    if "the last checkpoint is" in line:  # the bad sample came after step 1
        load_model(out / "last.safetensors")  # whole and loadable
    else:
        assert "before the first checkpoint" in line


def test_collate_keeps_the_readable_samples():
    from evss.train import ItemError, collate
    good = {"image": torch.zeros(3, 4, 4), "label": torch.zeros(4, 4, dtype=torch.long)}
    bad = ItemError("DataError", "cannot read image x.png")
    batch = collate([good, bad, good])
    assert isinstance(batch, validate.BadItems) and batch.errors == (bad,) and batch.batch["image"].shape[0] == 2
    assert collate([bad]).batch is None
    batch = collate([good, validate.Replaced(item=good, errors=(bad,))])  # ByPosition's stand-in
    assert batch.errors == (bad,) and batch.batch["image"].shape[0] == 2
    assert collate([good])["image"].shape == (1, 3, 4, 4)


def test_by_position_replaces_a_bad_sample_with_the_next_readable_one():
    from evss.errors import DataError as DE
    from evss.train import ByPosition, ItemError

    class Items:
        def __len__(self):
            return 4

        def __getitem__(self, i):
            if i == 2:
                raise DE("cannot read image two.png")
            return i

    view = ByPosition(Items(), seed=0)
    got = [view[p] for p in range(4)]
    replaced = [g for g in got if isinstance(g, validate.Replaced)]
    assert len(replaced) == 1 and replaced[0].errors == (ItemError("DataError", "cannot read image two.png"),)
    assert replaced[0].item in (0, 1, 3)


def test_a_crop_over_the_memory_budget_is_refused_up_front(tmp_path, capsys):
    rc, err = train(capsys, "--out", tmp_path / "run", "--steps", "1", "--synth-clips", "1", "--synth-frames", "2",
                    "--synth-size", "64x128", "--model", "tiny", "--crop", "8192x8192", "--batch-size", "64",
                    "--threads", "1", "--no-progress", "--no-tensorboard", "--device", "cpu")
    line = next(line for line in err.splitlines() if line.startswith("evss train: error:"))
    assert rc == 2 and "training needs about" in line and "crop 8192x8192 at batch 64" in line
    assert "pass a smaller --crop or --batch-size" in line


def test_a_rescale_over_the_budget_is_refused_up_front():
    from evss.config import preset
    from evss.errors import ConfigError
    from evss.memory import Budget, MiB
    total = validate.check_training_memory(stage="backbone", config=preset("tiny"), crop=(64, 128), frame=(720, 960),
                                           batch=2, scale_max=2.0, workers=0, budget=Budget(4096 * MiB, "t"))
    assert total > 0
    with pytest.raises(ConfigError, match=r"--scale-range up to 8x of the 9600x7200 frames"):
        validate.check_training_memory(stage="backbone", config=preset("tiny"), crop=(64, 128), frame=(7200, 9600),
                                       batch=2, scale_max=8.0, workers=2, budget=Budget(4096 * MiB, "t"))
