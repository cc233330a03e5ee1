"""SynthDrive: procedural driving clips with exact dense ground truth (labels, flow, occlusion).

A clip is one coherent camera drive down a street: a perspective road with lane markings,
pavements, building facades in several rows (parallax), trees, fences, signs, thin poles, parked
and moving cars, pedestrians and bicyclists that move independently, enter and leave the view and
occlude each other. Appearance is randomised per clip (procedural multi-scale textures, palette,
hue, brightness, sky) and changes within a clip (illumination drift, sensor noise, optional motion
blur), so colour alone does not give the class away.

Modules, in the order a clip is made:

* :mod:`.config`: :class:`SynthDriveConfig`, how clips look and move, and its check.
* :mod:`.render`: the 3D street world, its rasteriser, exact flow and occlusion, camera effects.
* :mod:`.clip`: :func:`generate_clip` and the :class:`Clip` it returns (the ground-truth
  conventions: flow direction and units, occlusion, labels, instance ids).
* :mod:`.stats`: the flow check and per-frame statistics; :mod:`.preview`: the contact sheet.
* :mod:`.storage`: :func:`write_dataset` and the on-disk layout, :func:`read_manifest`, label files.
* :mod:`.dataset`: :class:`SynthDriveDataset`, clips from a folder or generated on the fly.
"""

from evss.data.synthdrive.clip import GENERATOR_VERSION, Clip, clip_seed, generate_clip
from evss.data.synthdrive.config import SynthDriveConfig, check_config
from evss.data.synthdrive.dataset import SynthDriveDataset
from evss.data.synthdrive.preview import flow_to_rgb, make_preview
from evss.data.synthdrive.stats import clip_stats, warp_check
from evss.data.synthdrive.storage import check_label_ids, read_label, read_manifest, write_dataset

__all__ = [
    "GENERATOR_VERSION", "Clip", "SynthDriveConfig", "SynthDriveDataset", "check_config", "check_label_ids",
    "clip_seed", "clip_stats", "flow_to_rgb", "generate_clip", "make_preview", "read_label",
    "read_manifest", "warp_check", "write_dataset",
]
