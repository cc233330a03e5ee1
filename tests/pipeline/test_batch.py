"""Many inputs in one `evss segment`: names, the manifest, resume, failures kept local, SIGKILL."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import DATA, need_path, panning_clip
from evss.cli import main
from evss.errors import EvssError
from evss.media import write_video_frames
from evss.pipeline.batch import MANIFEST, expand, is_batch, plan
from evss.pipeline.options import OutputOptions


def _inputs(root: Path, n_videos: int = 2, frames: int = 7, size: tuple[int, int] = (48, 64)) -> list[Path]:
    """Videos of different lengths, a frame folder and a broken file."""
    root.mkdir(parents=True, exist_ok=True)
    vids = [write_video_frames(root / f"clip{i}.mp4", np.stack(panning_clip(frames + i, *size, step=2, seed=i)),
                               fps=15) for i in range(n_videos)]
    folder = root / "frames"
    folder.mkdir()
    for i, f in enumerate(panning_clip(5, 48, 64, step=3, seed=9)):
        Image.fromarray(f).save(folder / f"{i:03d}.png")
    broken = root / "broken.mp4"
    broken.write_bytes(np.random.default_rng(0).integers(0, 256, 20000, dtype=np.uint8).tobytes())
    return [*vids, folder, broken]


def _labels(folder: Path) -> np.ndarray:
    return np.stack([np.asarray(Image.open(p)) for p in sorted(folder.glob("*.png"))])


def _records(root: Path) -> dict[str, dict]:
    return {r["name"]: r for r in map(json.loads, (root / MANIFEST).read_text().splitlines())}


def test_names_keep_relative_paths_and_a_clash_is_an_error_before_any_work(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for rel in ("day1/a.mp4", "day2/a.mp4", "vids/x/y.mp4", "vids/z.mkv"):
        Path(rel).parent.mkdir(parents=True, exist_ok=True)
        Path(rel).write_bytes(b"x")
    names = [n.as_posix() for _, n in expand(["day1/a.mp4", "day2/a.mp4", "vids"])]
    assert names == ["day1/a", "day2/a", "vids/x/y", "vids/z"]
    items = plan(["day1/a.mp4", "vids"], tmp_path / "out", OutputOptions(save_labels=Path("labels")))
    assert [i.output for i in items] == [tmp_path / "out" / p for p in ("day1/a.mp4", "vids/x/y.mp4", "vids/z.mp4")]
    assert items[1].outputs.save_labels == Path("labels/vids/x/y")
    with pytest.raises(EvssError, match="would both write .*a.mp4"):
        plan([str(tmp_path / "day1" / "a.mp4"), str(tmp_path / "day2" / "a.mp4")], tmp_path / "out", OutputOptions())
    with pytest.raises(EvssError, match="in a batch it names a folder"):
        plan(["day1/a.mp4", "vids"], tmp_path / "out", OutputOptions(save_maps=Path("maps.mp4")))
    assert is_batch(["vids"], None) and is_batch(["day1/a.mp4", "day2/a.mp4"], None)
    assert not is_batch(["day1/a.mp4"], None)


def test_a_batch_equals_single_runs_records_one_failure_and_a_rerun_does_no_work(tmp_path, tiny_weights, capsys):
    """The two dash-cam clips, a frame folder and a broken file on 2 workers (frames at most 160 px, tiny model)."""
    clips = [need_path(DATA / "video" / name, "the dash-cam clips")
             for name in ("udacity_solidWhiteRight.mp4", "udacity_vehicle_test_video.mp4")]
    inputs = [*clips, *_inputs(tmp_path / "in")[2:]]  # + a frame folder and a broken file
    common = ["--weights", str(tiny_weights), "--mode", "evss", "--keyframe-interval", "3", "--max-size", "160", "-q"]
    out = tmp_path / "out"
    rc = main(["segment", *map(str, inputs), "-o", str(out), "--workers", "2", "--save-labels",
               str(tmp_path / "labels"), *common])
    err = capsys.readouterr()
    assert rc == 1, err
    recs = _records(out)
    names = ("udacity_solidWhiteRight", "udacity_vehicle_test_video", "frames")
    assert {n: r["status"] for n, r in recs.items()} == {**dict.fromkeys(names, "done"), "broken": "failed"}
    assert "not a video FFmpeg can read" in recs["broken"]["error"] and "failed: " in err.out
    assert [recs[n]["frames_out"] for n in names] == [221, 38, 5]
    for src, name in zip(inputs[:3], names):  # labels byte-identical to one input's own run
        assert main(["segment", str(src), "-o", str(tmp_path / f"single_{name}.mp4"), "--save-labels",
                     str(tmp_path / f"single_{name}"), *common]) == 0
        np.testing.assert_array_equal(_labels(tmp_path / "labels" / name), _labels(tmp_path / f"single_{name}"))
    capsys.readouterr()
    before = {p: p.stat().st_mtime_ns for p in out.glob("*.mp4")}
    assert main(["segment", *map(str, inputs), "-o", str(out), "--workers", "2", "--save-labels",
                 str(tmp_path / "labels"), *common]) == 1
    err = capsys.readouterr().err
    assert "3 done earlier (skipped), 1 failed earlier (retried), 0 to do" in err
    assert {p: p.stat().st_mtime_ns for p in out.glob("*.mp4")} == before
    assert [r["status"] for r in _records(out).values()].count("skipped") == 3
    assert len((out / MANIFEST).read_text().splitlines()) == 4  # one record per input


def test_a_rerun_with_other_options_or_a_changed_output_redoes_the_input(tmp_path, tiny_weights, capsys):
    inputs = _inputs(tmp_path / "in", n_videos=2)[:2]
    out = tmp_path / "out"
    args = ["segment", *map(str, inputs), "-o", str(out), "--weights", str(tiny_weights), "--workers", "1", "-q"]
    assert main(args) == 0
    (out / "clip0.mp4").write_bytes(b"damaged")
    assert main(args) == 0
    assert {n: r["status"] for n, r in _records(out).items()} == {"clip0": "done", "clip1": "skipped"}
    assert main([*args, "--keyframe-interval", "2"]) == 0
    assert {r["status"] for r in _records(out).values()} == {"done"}
    capsys.readouterr()


def test_a_batch_killed_half_way_resumes_without_redoing_what_it_finished(tmp_path, tiny_weights):
    inputs = _inputs(tmp_path / "in", n_videos=4, frames=30)[:4]
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "evss.cli", "segment", *map(str, inputs), "-o", str(out), "--weights",
           str(tiny_weights), "--workers", "1", "--threads", "1", "--mode", "evss", "-q"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.time() + 120
    while time.time() < deadline and not ((out / MANIFEST).exists() and (out / MANIFEST).read_text().strip()):
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    first = _records(out)
    assert 1 <= len(first) < 4, first  # killed half-way: some inputs done, not all
    finished = {n: (out / f"{n}.mp4").stat().st_mtime_ns for n in first}
    time.sleep(0.5)  # the killed batch's worker dies with it (PR_SET_PDEATHSIG): nothing is written after this
    assert {p.name for p in out.glob("*.mp4")} == {f"{n}.mp4" for n in first}  # no partial under a final name
    assert subprocess.run(cmd, capture_output=True).returncode == 0
    recs = _records(out)
    assert all(r["status"] in ("done", "skipped") for r in recs.values()) and len(recs) == 4
    assert {n for n, r in recs.items() if r["status"] == "skipped"} == set(first)  # nothing done twice
    assert {n: (out / f"{n}.mp4").stat().st_mtime_ns for n in first} == finished
    assert [recs[f"clip{i}"]["frames_out"] for i in range(4)] == [30, 31, 32, 33]
    assert not [p.name for p in out.iterdir() if "partial" in p.name]  # the killed input's temporary file is gone


@pytest.fixture
def ray_cluster(tmp_path):
    """A local Ray runtime started for the test (2 CPUs), stopped after it."""
    pytest.importorskip("ray")
    import shutil
    ray_bin = shutil.which("ray", path=str(Path(sys.executable).parent))
    temp = Path("/tmp") / f"ray_{os.getpid()}"  # Ray's socket paths must stay short
    env = {**os.environ, "RAY_AUTH_MODE": "disabled"}  # a throwaway local cluster: no token to hand around
    started = subprocess.run([ray_bin, "start", "--head", "--num-cpus", "2", "--include-dashboard", "false",
                              "--temp-dir", str(temp), "--port", "0"], capture_output=True, text=True, timeout=180,
                             env=env)
    assert started.returncode == 0, started.stderr
    address = next(line.split("'")[1] for line in started.stdout.splitlines() if "ray start --address=" in line)
    try:
        yield address
    finally:
        subprocess.run([ray_bin, "stop", "--force"], capture_output=True, timeout=120, env=env)
        shutil.rmtree(temp, ignore_errors=True)


@pytest.mark.slow
def test_ray_gives_the_same_labels_and_retries_a_killed_worker(tmp_path, tiny_weights, ray_cluster):
    inputs = _inputs(tmp_path / "in", n_videos=2, frames=120, size=(144, 192))  # long enough to be caught half-way
    common = ["--weights", str(tiny_weights), "--mode", "evss", "--threads", "1", "-q"]
    assert main(["segment", *map(str, inputs), "-o", str(tmp_path / "local"), "--workers", "2", "--save-labels",
                 str(tmp_path / "local_labels"), *common]) == 1
    out = tmp_path / "ray"
    env = {**os.environ, "RAY_AUTH_MODE": "disabled"}
    proc = subprocess.Popen([sys.executable, "-m", "evss.cli", "segment", *map(str, inputs), "-o", str(out),
                             "--ray", ray_cluster, "--save-labels", str(tmp_path / "ray_labels"), *common],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    killed = None
    deadline = time.time() + 240
    while killed is None and time.time() < deadline and proc.poll() is None:
        if list(out.glob(".clip*.partial.mp4")):  # an actor is half-way through an input: kill its process
            pids = subprocess.run(["pgrep", "-f", "ray::SegmentActor"], capture_output=True, text=True).stdout.split()
            if pids:
                killed = int(pids[0])
                os.kill(killed, signal.SIGKILL)
        time.sleep(0.05)
    stdout, stderr = proc.communicate(timeout=600)
    assert killed is not None, "no actor was caught half-way through an input"
    assert proc.returncode == 1, stderr
    recs = _records(out)
    assert {n: r["status"] for n, r in recs.items()} == {"clip0": "done", "clip1": "done", "frames": "done",
                                                         "broken": "failed"}
    for name in ("clip0", "clip1", "frames"):
        np.testing.assert_array_equal(_labels(tmp_path / "ray_labels" / name),
                                      _labels(tmp_path / "local_labels" / name))


def test_ctrl_c_discards_the_inputs_in_flight_and_says_how_to_resume(tmp_path, tiny_weights):
    inputs = _inputs(tmp_path / "in", n_videos=3, frames=400, size=(144, 192))[:3]  # seconds each: caught in flight
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "evss.cli", "segment", *map(str, inputs), "-o", str(out), "--weights",
           str(tiny_weights), "--workers", "1", "--mode", "evss", "-q"]
    # SIGINT's default disposition in the child, even when this test run inherited it ignored from a shell
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.time() + 120
    while time.time() < deadline and not list(out.glob(".clip*.partial.mp4")):
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "run the same command again to resume" in err and "Traceback" not in err
    assert not list(out.glob("*.partial*")) and not list(out.glob(".*partial*"))  # the input in flight is discarded
    done = {n for n, r in _records(out).items() if r["status"] == "done"} if (out / MANIFEST).exists() else set()
    assert {p.stem for p in out.glob("*.mp4")} == done  # nothing but complete inputs under final names
    assert subprocess.run(cmd, capture_output=True).returncode == 0
    assert {r["status"] for r in _records(out).values()} <= {"done", "skipped"} and len(_records(out)) == 3
