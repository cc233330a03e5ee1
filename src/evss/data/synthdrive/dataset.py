"""SynthDriveDataset: clips read from a folder written by write_dataset, or generated on the fly."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from evss.config import from_dict
from evss.data.synthdrive.clip import Clip, clip_seed, generate_clip
from evss.data.synthdrive.config import SynthDriveConfig, check_config
from evss.data.synthdrive.storage import clip_name, read_clip, read_frame, read_manifest
from evss.errors import ConfigError


class SynthDriveDataset(torch.utils.data.Dataset):
    """A sequence of SynthDrive clips, read from a folder written by :func:`write_dataset` or, with
    ``root=None``, generated on the fly: clip i is ``generate_clip(config, clip_seed(seed, i))``
    with its flow rounded through float16 like the stored files, so both modes give identical
    samples for the same seed and config.

    ``dataset[i]`` is a :class:`Clip`; :meth:`frame` returns one frame's arrays. Given a root, the
    manifest decides clips, seed and config and the keyword arguments are ignored. On-the-fly
    generation keeps the last generated clip, so frame-by-frame access does not regenerate it.
    """

    def __init__(self, root: str | Path | None = None, *, clips: int = 200, seed: int = 0,
                 config: SynthDriveConfig = SynthDriveConfig()) -> None:
        self.root = None if root is None else Path(root)
        self._cached: tuple[int, Clip] | None = None
        if self.root is None:
            check_config(config)
            if clips < 0:
                raise ConfigError(f"clips must be >= 0, got {clips}")
            self.config, self.seed = config, seed
            self._records = [{"name": clip_name(i), "seed": clip_seed(seed, i),
                              "frames": config.frames} for i in range(clips)]
            self.manifest = None
        else:
            self.manifest = read_manifest(self.root)
            self.config = from_dict(SynthDriveConfig, self.manifest["config"], where="manifest config")
            self.seed = int(self.manifest["seed"])
            self._records = self.manifest["clips"]

    def __len__(self) -> int:
        return len(self._records)

    def _check(self, i: int) -> dict:
        if not -len(self) <= i < len(self):
            raise IndexError(f"clip {i} out of range for {len(self)} clips")
        return self._records[i]

    def num_frames(self, i: int) -> int:
        return int(self._check(i)["frames"])

    def clip(self, i: int) -> Clip:
        rec = self._check(i)
        if self.root is None:
            if self._cached is None or self._cached[0] != i % len(self):
                c = generate_clip(self.config, rec["seed"])
                c.flow_bwd = c.flow_bwd.astype(np.float16).astype(np.float32)  # as on disk
                c.flow_fwd = c.flow_fwd.astype(np.float16).astype(np.float32)
                self._cached = (i % len(self), c)
            return self._cached[1]
        return read_clip(self.root, rec)

    def frame(self, i: int, t: int) -> dict[str, np.ndarray]:
        """One frame's arrays: frame (H, W, 3) uint8, label (H, W) uint8, flow_bwd / flow_fwd
        (2, H, W) float32, occlusion (H, W) bool, instances (H, W) int32 when stored. Reads only
        that frame's files from a folder."""
        rec = self._check(i)
        if not 0 <= t < int(rec["frames"]):
            raise IndexError(f"frame {t} out of range: {rec['name']} has {rec['frames']} frames")
        if self.root is None:
            c = self.clip(i)
            out = {"frame": c.frames[t], "label": c.labels[t], "flow_bwd": c.flow_bwd[t],
                   "flow_fwd": c.flow_fwd[t], "occlusion": c.occlusion[t]}
            if c.instances is not None:
                out["instances"] = c.instances[t]
            return out
        return read_frame(self.root, rec, t)

    def __getitem__(self, i: int) -> Clip:
        return self.clip(i)
