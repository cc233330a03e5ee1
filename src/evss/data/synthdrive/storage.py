"""SynthDrive on disk: :func:`write_dataset` writes clips and a manifest; readers load them back.

On-disk layout written by :func:`write_dataset` (``T`` frames per clip, ``tttttt`` = frame index)::

    out/manifest.json                      written last (temp file + rename); see write_dataset
    out/preview.png                        optional contact sheet
    out/clip_0000/frames/tttttt.png        RGB, 8 bit
    out/clip_0000/labels/tttttt.png        8-bit grey, CamVid-11 ids, 255 = void
    out/clip_0000/flow_bwd/tttttt.npy      float16 (2, H, W), dx then dy, pixels, as Clip.flow_bwd
    out/clip_0000/flow_fwd/tttttt.npy      float16 (2, H, W)
    out/clip_0000/occlusion/tttttt.png     8-bit grey, 255 = occluded
    out/clip_0000/instances/tttttt.png     16-bit grey object ids

float16 rounds flow by at most 1/2048 of its size (0.0005 px at 1 px, 0.016 px at 32 px); in
memory it is float32. A default 256x512 frame takes about 1.2 MiB on disk, so the default training
set (200 clips x 30 frames) takes about 7 GiB.
"""

from __future__ import annotations

import json
import os
import shutil
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, fields
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from evss.classes import CAMVID, IGNORE_INDEX
from evss.config import from_dict
from evss.data._paths import safe_join
from evss.data.sources import read_label_ids
from evss.data.synthdrive.clip import GENERATOR_VERSION, Clip, clip_seed, generate_clip
from evss.data.synthdrive.config import SynthDriveConfig, check_config
from evss.data.synthdrive.preview import contact_sheet, preview_row
from evss.data.synthdrive.stats import clip_stats
from evss.errors import ConfigError, DataError

_KINDS = ("frames", "labels", "flow_bwd", "flow_fwd", "occlusion", "instances")
_EXT = {"frames": ".png", "labels": ".png", "flow_bwd": ".npy", "flow_fwd": ".npy", "occlusion": ".png",
        "instances": ".png"}
# Fast lossless PNG: level 1 with run-length matching is quicker and smaller than zlib's default
# strategy on noisy frames, and label/occlusion maps still shrink to a few KiB.
_PNG = [cv2.IMWRITE_PNG_COMPRESSION, 1, cv2.IMWRITE_PNG_STRATEGY, cv2.IMWRITE_PNG_STRATEGY_RLE]


def clip_name(i: int) -> str:
    """The folder name of clip ``i`` in a dataset folder."""
    return f"clip_{i:04d}"


def _write_png(path: Path, img: np.ndarray) -> None:
    if not cv2.imwrite(str(path), img, _PNG):
        raise DataError(f"could not write {path}")


def _write_clip(folder: Path, clip: Clip) -> None:
    for kind in _KINDS:
        if kind != "instances" or clip.instances is not None:
            (folder / kind).mkdir(parents=True, exist_ok=True)
    for t in range(len(clip.frames)):
        name = f"{t:06d}"
        _write_png(folder / "frames" / f"{name}.png", np.ascontiguousarray(clip.frames[t, :, :, ::-1]))
        _write_png(folder / "labels" / f"{name}.png", clip.labels[t])
        np.save(folder / "flow_bwd" / f"{name}.npy", clip.flow_bwd[t].astype(np.float16))
        np.save(folder / "flow_fwd" / f"{name}.npy", clip.flow_fwd[t].astype(np.float16))
        _write_png(folder / "occlusion" / f"{name}.png", clip.occlusion[t].astype(np.uint8) * 255)
        if clip.instances is not None:
            _write_png(folder / "instances" / f"{name}.png", clip.instances[t].astype(np.uint16))


def _write_clip_atomic(out: Path, i: int, clip: Clip) -> None:
    tmp = out / f"{clip_name(i)}.tmp"
    if tmp.exists():
        shutil.rmtree(tmp)
    _write_clip(tmp, clip)
    tmp.rename(out / clip_name(i))


def _read(path: Path, kind: str) -> np.ndarray:
    if not path.is_file():
        raise DataError(f"missing SynthDrive file {path}")
    if path.suffix == ".npy":
        try:
            arr = np.load(path)  # allow_pickle=False: a .npy that holds objects is refused
        except Exception as e:  # noqa: BLE001 - ValueError, OSError, EOFError ... on a damaged file
            raise DataError(f"unreadable flow file {path}: {' '.join(str(e).split())}") from None
        if arr.ndim != 3 or arr.shape[0] != 2:
            raise DataError(f"{path} holds shape {arr.shape}, expected (2, H, W) flow")
        return arr.astype(np.float32)
    img = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if img is None:
        raise DataError(f"unreadable image {path}")
    if kind == "frames":
        if img.ndim != 3:
            raise DataError(f"{path} is not an RGB image")
        return np.ascontiguousarray(img[:, :, ::-1])
    if img.ndim != 2:
        raise DataError(f"{path} should be a single-channel image, got shape {img.shape}")
    if kind == "labels":
        return check_label_ids(img, path)
    if kind == "occlusion":
        return img > 127
    if kind == "instances":
        return img.astype(np.int32)
    return img


def check_label_ids(ids: np.ndarray, path: Path) -> np.ndarray:
    """(H, W) CamVid-11 ids 0..10 or 255 (void) as uint8; DataError naming the file for others."""
    bad = (ids >= CAMVID.num_classes) & (ids != IGNORE_INDEX)
    if bad.any():
        values = np.unique(ids[bad])
        shown = ", ".join(str(int(v)) for v in values[:8]) + (" ..." if len(values) > 8 else "")
        raise DataError(f"label {path} has ids {shown} outside SynthDrive's CamVid-11 ids "
                        f"(0..{CAMVID.num_classes - 1}, {IGNORE_INDEX} = void)")
    return ids.astype(np.uint8)


def read_label(path: Path) -> np.ndarray:
    """One SynthDrive label PNG: (H, W) uint8 CamVid-11 ids, 255 = void; DataError naming the file."""
    return check_label_ids(read_label_ids(path), path)


def write_dataset(out: str | Path, *, clips: int, seed: int,
                  config: SynthDriveConfig = SynthDriveConfig(), preview: bool = False,
                  progress: bool = True) -> Path:
    """Generate ``clips`` clips into ``out`` (layout in the module docstring); return the manifest.

    Clip i uses ``clip_seed(seed, i)``, so :class:`SynthDriveDataset` without a root yields the same
    samples. Each clip is written to ``clip_XXXX.tmp`` and renamed when complete; the manifest is
    removed first and written last (temp file + rename), so after a crash no manifest claims
    unfinished clips. Re-running into the same folder replaces its contents.
    """
    check_config(config)
    if clips < 1:
        raise ConfigError(f"clips must be at least 1, got {clips}")
    out = Path(out)
    manifest_path = out / "manifest.json"
    _clear_folder(out)
    records, totals, previews = _write_clips(out, clips=clips, seed=seed, config=config, preview=preview,
                                             progress=progress)
    if preview:
        tmp = out / ".preview.tmp.png"  # the suffix tells OpenCV the format
        _write_png(tmp, np.ascontiguousarray(contact_sheet(previews)[:, :, ::-1]))
        os.replace(tmp, out / "preview.png")
    manifest = _manifest(config, seed=seed, records=records, totals=totals)
    tmp = out / ".manifest.json.tmp"
    tmp.write_text(json.dumps(manifest, indent=1))
    os.replace(tmp, manifest_path)
    return manifest_path


def _clear_folder(out: Path) -> None:
    """Make ``out`` an empty SynthDrive folder: refuse a folder of anything else, remove an earlier
    run's manifest first (so that it never claims the clips being replaced), then its clips."""
    if out.exists() and not out.is_dir():
        raise DataError(f"{out} exists and is not a folder")
    manifest_path = out / "manifest.json"
    if out.exists():
        foreign = [p.name for p in out.iterdir()
                   if not (p.name.startswith("clip_") or p.name in ("manifest.json", "preview.png")
                           or p.name.startswith((".manifest", ".preview")))]
        if manifest_path.exists():
            try:
                ours = json.loads(manifest_path.read_text()).get("format") == "synthdrive"
            except (json.JSONDecodeError, UnicodeDecodeError, AttributeError):
                ours = False
            if not ours:
                raise DataError(f"{manifest_path} is not a SynthDrive manifest; refusing to "
                                "overwrite that folder")
        elif foreign:
            raise DataError(f"{out} is not empty and is not a SynthDrive folder (it holds "
                            f"{foreign[:3]}); choose an empty or new folder")
    out.mkdir(parents=True, exist_ok=True)
    manifest_path.unlink(missing_ok=True)
    (out / "preview.png").unlink(missing_ok=True)
    for stale in out.glob("clip_*"):  # from an earlier run; the manifest no longer claims them
        shutil.rmtree(stale) if stale.is_dir() and not stale.is_symlink() else stale.unlink()


def _write_clips(out: Path, *, clips: int, seed: int, config: SynthDriveConfig, preview: bool,
                 progress: bool) -> tuple[list[dict], np.ndarray, list[np.ndarray]]:
    """Generate and write the clips: (the manifest's clip records, pixels per class (12,) with void
    last, the preview rows of the first four clips when ``preview``)."""
    records, totals, previews = [], np.zeros(12, np.int64), []
    bar = tqdm(range(clips), desc="synthdrive", unit="clip", disable=not progress)
    # PNG encoding releases the GIL: one writer thread encodes clip i while clip i + 1 renders.
    # At most one clip waits, which bounds memory to about two clips.
    with ThreadPoolExecutor(max_workers=1) as pool:
        pending: Future | None = None
        for i in bar:
            s = clip_seed(seed, i)
            clip = generate_clip(config, s)
            if pending is not None:
                pending.result()  # re-raises a failed write
            pending = pool.submit(_write_clip_atomic, out, i, clip)
            stats = clip_stats(clip)
            records.append({"name": clip_name(i), "seed": s, "frames": int(len(clip.frames)),
                            "moving_instances": list(clip.moving_instances), "stats": stats})
            totals += np.array(list(stats["class_pixels"].values()), np.int64)
            if preview and i < 4:
                previews.append(preview_row(clip))
            bar.set_postfix(occl=f"{np.mean(stats['occluded_fraction'][1:] or [0]):.3f}",
                            err=f"{np.mean(stats['photometric_error'] or [0]):.2f}")
        if pending is not None:
            pending.result()
    return records, totals, previews


def _manifest(config: SynthDriveConfig, *, seed: int, records: list[dict], totals: np.ndarray) -> dict:
    """``manifest.json``: the generator, its settings, the layout and conventions, the clips and
    their class and per-frame statistics."""
    names = list(CAMVID.names) + ["void"]
    labelled = max(int(totals[:11].sum()), 1)
    per_frame = {k: [x for r in records for x in r["stats"][k][(1 if k == "occluded_fraction" else 0):]]
                 for k in ("thin_fraction", "occluded_fraction", "moving_fraction", "photometric_error",
                           "label_agreement")}
    return {
        "format": "synthdrive",
        "generator_version": GENERATOR_VERSION,
        "seed": int(seed),
        "config": asdict(config),
        "label_space": CAMVID.name,
        "classes": list(CAMVID.names),
        "ignore_index": IGNORE_INDEX,
        "layout": {k: f"clip_XXXX/{k}/tttttt{_EXT[k]}" for k in _KINDS},
        "flow": "float16 (2, H, W): channel 0 = dx, 1 = dy in pixels; backward flow of "
                "evss.models.warp (flow_bwd[t]: t -> t-1, flow_fwd[t]: t -> t+1)",
        "occlusion": "255 where the pixel of frame t is not visible in frame t-1",
        "clips": records,
        "class_stats": {
            "pixels_per_class": {n: int(c) for n, c in zip(names, totals)},
            "fraction_of_labelled": {n: round(int(c) / labelled, 6)
                                     for n, c in zip(names[:11], totals[:11])},
            "void_fraction": round(int(totals[11]) / max(int(totals.sum()), 1), 6),
        },
        "frame_stats": {k: _summary(v) for k, v in per_frame.items()},
        "frame_stats_notes": {
            "thin_fraction": "pixels labelled Pole, Pedestrian or Bicyclist (CAMVID.thin)",
            "occluded_fraction": "occlusion mask, frames t >= 1",
            "moving_fraction": "pixels of objects moving in the world (cars, people, bicyclists)",
            "photometric_error": "mean |frame t - bilinear warp(frame t-1, flow_bwd t)| in 8-bit "
                                 "levels on non-occluded pixels (includes sensor noise and "
                                 "illumination drift)",
            "label_agreement": "labels of t-1 warped by nearest sampling vs labels of t, "
                               "non-occluded pixels",
        },
    }


def _summary(values: list[float]) -> dict:
    a = np.asarray(values, float)
    if a.size == 0:
        return {"mean": None, "min": None, "max": None}
    return {"mean": round(float(a.mean()), 5), "min": round(float(a.min()), 5),
            "max": round(float(a.max()), 5)}


def read_manifest(root: str | Path) -> dict:
    """Load and validate ``root/manifest.json``; DataError naming the problem otherwise.

    The manifest is data: clip names are joined with ``root`` through
    :func:`evss.data._paths.safe_join`, so an entry cannot point outside the folder.
    """
    path = Path(root) / "manifest.json"
    if not path.is_file():
        raise DataError(f"no manifest.json in {root}: not a SynthDrive folder, "
                        "or its writer did not finish")
    try:
        manifest = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError, OSError) as e:
        raise DataError(f"{path} is not valid JSON: {e}") from None
    if not isinstance(manifest, dict) or manifest.get("format") != "synthdrive":
        raise DataError(f"{path} is not a SynthDrive manifest (format must be 'synthdrive')")
    for key in ("generator_version", "seed", "config", "clips"):
        if key not in manifest:
            raise DataError(f"{path} lacks the key '{key}'")
    if not isinstance(manifest["config"], dict):
        raise DataError(f"{path}: 'config' is {type(manifest['config']).__name__}, expected an object")
    known = {f.name for f in fields(SynthDriveConfig)}
    unknown = set(manifest["config"]) - known
    if unknown:
        raise DataError(f"{path} has unknown config keys {sorted(unknown)} "
                        "(written by a newer generator?)")
    try:
        check_config(from_dict(SynthDriveConfig, manifest["config"], where=f"{path} config"))
    except ConfigError as e:
        raise DataError(str(e)) from None
    if not isinstance(manifest["seed"], int) or isinstance(manifest["seed"], bool):
        raise DataError(f"{path}: seed {manifest['seed']!r} is not an integer")
    if not isinstance(manifest["clips"], list):
        raise DataError(f"{path}: 'clips' is {type(manifest['clips']).__name__}, expected a list")
    for rec in manifest["clips"]:
        if not isinstance(rec, dict) or not {"name", "frames"} <= set(rec):
            raise DataError(f"{path}: clip record {rec!r} needs 'name' and 'frames'")
        frames = rec["frames"]
        if not isinstance(frames, int) or isinstance(frames, bool) or frames < 0:
            raise DataError(f"{path}: clip {rec['name']!r} has frames {frames!r}, expected an integer >= 0")
        folder = safe_join(root, rec["name"], source=path)
        if not folder.is_dir():
            raise DataError(f"{path} lists {rec['name']} but {folder} is missing")
    return manifest


def read_clip(root: Path, rec: dict) -> Clip:
    """The clip that manifest record ``rec`` names in ``root``; DataError naming a missing or
    damaged file. A folder without ``instances`` gives a clip without instance ids."""
    folder = safe_join(root, rec["name"], source=root / "manifest.json")
    arrays = {k: [] for k in _KINDS}
    has_inst = (folder / "instances").is_dir()
    for t in range(int(rec["frames"])):
        for k in _KINDS:
            if k != "instances" or has_inst:
                arrays[k].append(_read(folder / k / f"{t:06d}{_EXT[k]}", k))
    moving = tuple(rec.get("moving_instances", ()))
    return Clip(frames=np.stack(arrays["frames"]), labels=np.stack(arrays["labels"]),
                flow_bwd=np.stack(arrays["flow_bwd"]), flow_fwd=np.stack(arrays["flow_fwd"]),
                occlusion=np.stack(arrays["occlusion"]),
                instances=np.stack(arrays["instances"]) if has_inst else None,
                moving_instances=moving)


def read_frame(root: Path, rec: dict, t: int) -> dict[str, np.ndarray]:
    """Frame t of the clip that ``rec`` names in ``root``, reading only that frame's files
    (keys and arrays as :meth:`evss.data.synthdrive.dataset.SynthDriveDataset.frame`)."""
    folder = safe_join(root, rec["name"], source=root / "manifest.json")
    names = {"frames": "frame", "labels": "label"}
    return {names.get(k, k): _read(folder / k / f"{t:06d}{_EXT[k]}", k) for k in _KINDS
            if k != "instances" or (folder / "instances").is_dir()}
