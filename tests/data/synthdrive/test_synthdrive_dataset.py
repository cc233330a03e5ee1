"""SynthDriveDataset: a written folder and on-the-fly generation give the same samples
(evss.data.synthdrive.dataset)."""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from evss.data.synthdrive import SynthDriveConfig, SynthDriveDataset, clip_seed, generate_clip, write_dataset

SMALL = SynthDriveConfig(height=64, width=128, frames=4)


def test_folder_and_on_the_fly_agree(tmp_path) -> None:
    cfg = replace(SMALL, frames=3)
    root = tmp_path / "sd"
    write_dataset(root, clips=2, seed=5, config=cfg, progress=False)
    disk = SynthDriveDataset(root)
    fly = SynthDriveDataset(clips=2, seed=5, config=cfg)
    assert len(disk) == len(fly) == 2 and disk.num_frames(1) == 3 and disk.config == cfg
    a, b = disk.clip(1), fly[1]
    assert np.array_equal(a.frames, b.frames) and np.array_equal(a.labels, b.labels)
    assert np.array_equal(a.occlusion, b.occlusion) and np.array_equal(a.instances, b.instances)
    assert a.moving_instances == b.moving_instances
    assert np.array_equal(a.flow_bwd, b.flow_bwd) and np.array_equal(a.flow_fwd, b.flow_fwd)
    raw = generate_clip(cfg, clip_seed(5, 1)).flow_bwd  # float32 before the float16 file
    assert np.allclose(raw, a.flow_bwd, atol=1e-3, rtol=1e-3)
    one = disk.frame(1, 2)
    assert np.array_equal(one["frame"], b.frames[2]) and np.array_equal(one["label"], b.labels[2])
    assert one["flow_bwd"].shape == (2, 64, 128) and one["occlusion"].dtype == bool
    assert np.array_equal(fly.clip(1).frames, generate_clip(cfg, clip_seed(5, 1)).frames)
