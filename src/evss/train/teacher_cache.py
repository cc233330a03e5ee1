"""The frozen teacher's outputs, computed once per training frame (the cheap EVSS stage).

The EVSS stage trains FlowNet and CoNet against a *frozen* backbone (Sec. IV-A), so the backbone's
keyframe features F^b_k (the 1/4-resolution logits) and the pseudo-labels P^gt_i (Sec. III-E) are
the same at every step a frame is drawn. :func:`build_teacher_cache` computes them once for every
frame of a sequence source, on the whole frame, and stores them memory-mapped:

    root/manifest.json            version, the backbone's fingerprint, flow source, shapes, progress
    root/seq0000.logits.f16       (T, C, ceil(H/4), ceil(W/4)) float16 backbone logits
    root/seq0000.pseudo.u8        (T, H, W) uint8 argmax of the x4-upsampled logits (P^gt)
    root/seq0000.flow.f16         (T, D, 2, ceil(H/4), ceil(W/4)) float16, only for an untrained
                                  flow source (dis): the flow of the pair (I_{t-d}, I_t) for each
                                  offset d in [d_min, d_max] (d = 0 is the zero flow)

The cache is keyed by the backbone's fingerprint (a hash of its weights and config): a cache built
for other weights is refused, never silently used. Building resumes where it stopped: the manifest
records how many frames of each sequence are done, written atomically after the rows themselves.

:class:`CachedPairDataset` draws the same pairs as :class:`evss.data.pairs.PairDataset` (offset,
flip, crop; the crop snapped to the 1/4 grid) and returns the cached tensors with them.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from evss.checkpoint import atomic_write
from evss.classes import IGNORE_INDEX
from evss.data.pairs import TargetFrames
from evss.data.sources import SequenceSource
from evss.data.transforms import choose_offset, edge_target
from evss.errors import DataError
from evss.models.upsample import upsample4
from evss.tensors import image_to_tensor, label_to_tensor, pad_to_multiple

CACHE_VERSION = "1"
MANIFEST = "manifest.json"


def backbone_fingerprint(backbone: torch.nn.Module) -> str:
    """A hash of the backbone's weights (float32 bytes, names, shapes) and class: the cache's key."""
    h = hashlib.sha256(type(backbone).__name__.encode())
    for name, value in sorted(backbone.state_dict().items()):
        h.update(name.encode())
        h.update(str(tuple(value.shape)).encode())
        h.update(value.detach().to("cpu", torch.float32).contiguous().numpy().tobytes())
    return h.hexdigest()[:20]


def _quarter(h: int, w: int) -> tuple[int, int]:
    return -(-h // 4), -(-w // 4)


def _files(root: Path, s: int) -> dict[str, Path]:
    return {k: root / f"seq{s:04d}.{k}.{ext}" for k, ext in (("logits", "f16"), ("pseudo", "u8"), ("flow", "f16"))}


def _read_manifest(root: Path) -> dict[str, Any] | None:
    path = root / MANIFEST
    if not path.exists():
        return None
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: not a readable teacher-cache manifest ({exc}); delete {root} to rebuild") from None
    if not isinstance(data, dict) or data.get("version") != CACHE_VERSION:
        raise DataError(f"{path}: teacher cache version {data.get('version') if isinstance(data, dict) else '?'}, "
                        f"expected {CACHE_VERSION}; delete {root} to rebuild")
    return data


def _write_manifest(root: Path, data: dict[str, Any]) -> None:
    atomic_write(root / MANIFEST, lambda tmp: tmp.write_text(json.dumps(data, indent=1) + "\n"))


@torch.no_grad()
def teacher_outputs(backbone: torch.nn.Module, frame: np.ndarray, device: torch.device
                    ) -> tuple[np.ndarray, np.ndarray]:
    """(logits (C, h4, w4) float16, pseudo-label (H, W) uint8) of one uint8 RGB frame, whole.

    The frame is edge-padded to a multiple of 32 as the segmenter does; logits are cropped back to
    the 1/4 grid of the frame and the pseudo-label is the argmax of their x4 upsampling.
    """
    h, w = frame.shape[:2]
    x = pad_to_multiple(image_to_tensor(frame)[None].to(device), 32)  # (1, 3, Hp, Wp)
    h4, w4 = _quarter(h, w)
    logits = backbone(x)[:, :, :h4, :w4].float()  # (1, C, h4, w4)
    up = upsample4(logits, (h, w))  # (1, C, h, w)
    return logits[0].half().cpu().numpy(), up.argmax(1)[0].to(torch.uint8).cpu().numpy()


def build_teacher_cache(source: SequenceSource, backbone: torch.nn.Module, root: str | Path, *,
                        device: torch.device | str = "cpu", flow: Any = None, flow_name: str | None = None,
                        offsets: Sequence[int] = (), progress: bool = True, stop_after: int | None = None) -> Path:
    """Compute (or finish computing) the teacher cache of ``source`` in ``root``; returns ``root``.

    ``flow`` (a FlowEstimator, e.g. DIS) with ``flow_name`` also caches the flow of every pair
    (I_{t-d}, I_t) for d in [min(offsets), max(offsets)]. ``stop_after`` stops after that many
    frames (tests of the resume). An existing cache for another backbone, flow or offsets is refused.
    """
    root = Path(root)
    device = torch.device(device)
    backbone = backbone.to(device).eval()
    fingerprint = backbone_fingerprint(backbone)
    d_range = (min(offsets), max(offsets)) if flow is not None else None
    sequences = _sequence_records(source)
    want = {"version": CACHE_VERSION, "backbone": fingerprint, "num_classes": int(backbone.num_classes),
            "flow": flow_name if flow is not None else None, "offset_range": list(d_range) if d_range else None}
    manifest = _read_manifest(root)
    if manifest is not None:
        _check_manifest(root, manifest, want, sequences)
        sequences = manifest["sequences"]
    root.mkdir(parents=True, exist_ok=True)
    manifest = {**want, "sequences": sequences}
    total = sum(q["frames"] for q in sequences)
    bar = tqdm(total=total, initial=sum(q["done"] for q in sequences), desc="teacher cache",
               disable=not progress, dynamic_ncols=True)
    computed = 0
    try:
        for s, q in enumerate(sequences):
            if q["done"] >= q["frames"]:
                continue
            computed += _fill_sequence(source, s, root, manifest, backbone=backbone, device=device, flow=flow,
                                       d_range=d_range, bar=bar,
                                       budget=stop_after - computed if stop_after else None)
            if stop_after and computed >= stop_after:
                return root
    finally:
        bar.close()
    _write_manifest(root, manifest)
    return root


def _sequence_records(source: SequenceSource) -> list[dict[str, Any]]:
    """The manifest's record of each sequence: frames, size, a digest of its first and last frames, 0 done."""
    sequences = []
    for s in range(source.num_sequences()):
        first = source.frame(s, 0)
        n = source.sequence_length(s)
        # what the frames hold, not only their count and size: generated data (SynthDrive in memory,
        # still-motion clips) of another seed or setting has the same shapes and other pixels
        digest = hashlib.sha1(np.ascontiguousarray(first).tobytes())
        digest.update(np.ascontiguousarray(source.frame(s, n - 1)).tobytes())
        sequences.append({"frames": n, "height": int(first.shape[0]), "width": int(first.shape[1]),
                          "digest": digest.hexdigest()[:16], "done": 0})
    return sequences


def _check_manifest(root: Path, manifest: dict[str, Any], want: dict[str, Any],
                    sequences: list[dict[str, Any]]) -> None:
    """Refuse a cache of another backbone, flow, offsets or data: finishing it would mix targets."""
    for key, value in want.items():
        if manifest.get(key) != value:
            raise DataError(f"{root} holds a teacher cache with {key} {manifest.get(key)!r}, not {value!r}; "
                            "pass another --cache folder or delete this one")
    shape = [(q["frames"], q["height"], q["width"]) for q in sequences]
    if [(q["frames"], q["height"], q["width"]) for q in manifest["sequences"]] != shape:
        raise DataError(f"{root} holds a teacher cache of other data (sequence lengths or sizes differ)")
    if any("digest" not in q for q in manifest["sequences"]):
        raise DataError(f"{root} holds a teacher cache written before caches recorded what their frames hold; "
                        "delete it or pass another --cache folder")
    if [q["digest"] for q in manifest["sequences"]] != [q["digest"] for q in sequences]:
        raise DataError(f"{root} holds a teacher cache of other data (same sizes, other frames: another seed "
                        "or setting of generated data?); pass another --cache folder or delete this one")


def _open_rows(root: Path, s: int, q: dict[str, Any], *, num_classes: int, d_range: tuple[int, int] | None
               ) -> tuple[np.memmap, np.memmap, np.memmap | None]:
    """The memory maps of sequence ``s`` (logits, pseudo-labels, flows or None): new, or reopened to finish."""
    T, H, W = q["frames"], q["height"], q["width"]
    h4, w4 = _quarter(H, W)
    files = _files(root, s)
    mode = "r+" if q["done"] else "w+"
    logits = np.memmap(files["logits"], np.float16, mode, shape=(T, num_classes, h4, w4))
    pseudo = np.memmap(files["pseudo"], np.uint8, mode, shape=(T, H, W))
    flows = (np.memmap(files["flow"], np.float16, mode, shape=(T, d_range[1] - d_range[0] + 1, 2, h4, w4))
             if d_range else None)
    return logits, pseudo, flows


def _fill_sequence(source: SequenceSource, s: int, root: Path, manifest: dict[str, Any], *,
                   backbone: torch.nn.Module, device: torch.device, flow: Any, d_range: tuple[int, int] | None,
                   bar: tqdm, budget: int | None) -> int:
    """Compute the rows of sequence ``s`` not done yet, at most ``budget`` (None: all); returns how many.

    The manifest is written after the rows it counts (every 16th, the last, the last of the budget),
    so a crash never marks unwritten rows done.
    """
    q = manifest["sequences"][s]
    T, H, W = q["frames"], q["height"], q["width"]
    logits, pseudo, flows = _open_rows(root, s, q, num_classes=int(backbone.num_classes), d_range=d_range)
    computed = 0
    for t in range(q["done"], T):
        frame = source.frame(s, t)
        if frame.shape[:2] != (H, W):
            raise DataError(f"sequence {s}: frame {t} is {frame.shape[0]}x{frame.shape[1]}, the sequence "
                            f"started at {H}x{W}")
        logits[t], pseudo[t] = teacher_outputs(backbone, frame, device)
        if flows is not None:
            _cache_flows(flows, source, s, t, frame, flow=flow, d_range=d_range)
        q["done"] = t + 1
        computed += 1
        bar.update(1)
        spent = budget is not None and computed >= budget
        if q["done"] % 16 == 0 or q["done"] == T or spent:
            for m in (logits, pseudo, flows):
                if m is not None:
                    m.flush()
            _write_manifest(root, manifest)  # after the rows: a crash never marks unwritten rows done
        if spent:
            break
    del logits, pseudo, flows
    return computed


def _cache_flows(flows: np.memmap, source: SequenceSource, s: int, t: int, frame: np.ndarray, *, flow: Any,
                 d_range: tuple[int, int]) -> None:
    """Row ``t`` of ``flows``: the flow of (I_{t-d}, I_t) for each offset d; zero for d = 0 and outside the clip."""
    T = flows.shape[0]
    current = image_to_tensor(frame)[None]  # (1, 3, H, W)
    for j, d in enumerate(range(d_range[0], d_range[1] + 1)):
        k = t - d
        if d == 0 or not 0 <= k < T:
            flows[t, j] = 0
            continue
        reference = image_to_tensor(source.frame(s, k))[None]  # (1, 3, H, W)
        flows[t, j] = flow(reference, current)[0].float().numpy().astype(np.float16)  # (2, h4, w4)


class TeacherCache:
    """Read access to a finished cache, checked against the backbone that should have made it."""

    def __init__(self, root: str | Path, *, fingerprint: str, flow_name: str | None = None) -> None:
        self.root = Path(root)
        manifest = _read_manifest(self.root)
        if manifest is None:
            raise DataError(f"no teacher cache in {self.root} (build it with `evss cache`)")
        if manifest["backbone"] != fingerprint:
            raise DataError(f"{self.root} was built for another backbone ({manifest['backbone']}, this teacher is "
                            f"{fingerprint}): a stale cache would train against the wrong targets; rebuild it")
        if flow_name is not None and manifest.get("flow") != flow_name:
            raise DataError(f"{self.root} holds no {flow_name} flow (it has {manifest.get('flow')}); rebuild it "
                            f"with --flow {flow_name}")
        unfinished = [s for s, q in enumerate(manifest["sequences"]) if q["done"] < q["frames"]]
        if unfinished:
            raise DataError(f"{self.root} is unfinished (sequence {unfinished[0]}: "
                            f"{manifest['sequences'][unfinished[0]]['done']} of "
                            f"{manifest['sequences'][unfinished[0]]['frames']} frames); run the cache command again")
        self.manifest = manifest
        self.num_classes = int(manifest["num_classes"])
        self.offset_range = tuple(manifest["offset_range"]) if manifest.get("offset_range") else None
        self._maps: dict[int, dict[str, np.ndarray]] = {}

    def arrays(self, s: int) -> dict[str, np.ndarray]:
        if s not in self._maps:  # opened lazily, so that DataLoader workers open their own maps
            q = self.manifest["sequences"][s]
            T, H, W = q["frames"], q["height"], q["width"]
            h4, w4 = _quarter(H, W)
            files = _files(self.root, s)
            maps = {"logits": np.memmap(files["logits"], np.float16, "r", shape=(T, self.num_classes, h4, w4)),
                    "pseudo": np.memmap(files["pseudo"], np.uint8, "r", shape=(T, H, W))}
            if self.offset_range:
                n = self.offset_range[1] - self.offset_range[0] + 1
                maps["flow"] = np.memmap(files["flow"], np.float16, "r", shape=(T, n, 2, h4, w4))
            self._maps[s] = maps
        return self._maps[s]

    def __getstate__(self) -> dict[str, Any]:  # memmaps are reopened in each worker
        return {**self.__dict__, "_maps": {}}


class CachedPairDataset(TargetFrames):
    """:class:`~evss.data.pairs.PairDataset`'s pairs with the teacher's cached outputs.

    Items: ``image`` (3, h, w) I_i and ``key_image`` (3, h, w) I_k (the learned flow needs both),
    ``key_logits`` (C, h/4, w/4) F^b_k, ``pseudo`` (h, w) P^gt_i, ``label``, ``edge``, ``offset``
    and, with a cached flow, ``flow`` (2, h/4, w/4). The crop's corner and size are multiples of 4
    so that the 1/4-grid crop of the cached maps is exact; flipping mirrors the maps too (and
    negates the flow's dx), which is the flip of the full-frame teacher, not the teacher of the
    flipped frame: the difference is the backbone's own flip inconsistency.
    """

    def __init__(self, source: SequenceSource, cache: TeacherCache, *, thin_classes: Sequence[int],
                 crop_size: tuple[int, int] | None, flip: bool, seed: int, offsets: Sequence[int],
                 use_flow: bool = False, edge_dilation: int = 1) -> None:
        if crop_size is not None and (crop_size[0] % 4 or crop_size[1] % 4):
            raise DataError(f"the cached EVSS stage needs a crop that is a multiple of 4, got {crop_size}")
        if use_flow and cache.offset_range is None:
            raise DataError(f"{cache.root} holds no cached flow")
        self.source, self.cache, self.thin = source, cache, tuple(thin_classes)
        self.crop_size, self.flip, self.seed, self.offsets = crop_size, flip, seed, tuple(offsets)
        self.use_flow, self.edge_dilation = use_flow, edge_dilation
        self.list_targets(source)

    def __getitem__(self, index: int) -> dict[str, Any]:
        s, t = self.targets[index]
        rng = np.random.default_rng([self.seed, self.epoch, index])
        d = choose_offset(rng, self.offsets, target=t, length=self.source.sequence_length(s))
        maps = self.cache.arrays(s)
        key, image = self.source.frame(s, t - d), self.source.frame(s, t)  # (H, W, 3) uint8
        H, W = image.shape[:2]
        label = self.source.label(s, t)
        if label is None:
            label = np.full((H, W), IGNORE_INDEX, np.uint8)
        edge = edge_target(label, thin_classes=self.thin, dilation=self.edge_dilation)  # (H, W)
        flip = bool(rng.random() < (0.5 if self.flip else 0.0))  # drawn as PairDataset draws it
        ch, cw = self.crop_size or (H - H % 4, W - W % 4)
        top = 4 * int(rng.integers(max(0, H - ch) // 4 + 1))
        left = 4 * int(rng.integers(max(0, W - cw) // 4 + 1))

        def full(x: np.ndarray, fill: int) -> np.ndarray:  # (H, W, ...) -> flipped, padded, cropped
            x = x[:, ::-1] if flip else x
            if x.shape[0] < top + ch or x.shape[1] < left + cw:
                pad = [(0, max(0, top + ch - x.shape[0])), (0, max(0, left + cw - x.shape[1]))]
                x = np.pad(x, pad + [(0, 0)] * (x.ndim - 2), constant_values=fill)
            return np.ascontiguousarray(x[top:top + ch, left:left + cw])

        def quarter(x: np.ndarray) -> np.ndarray:  # (K, h4, w4) -> flipped, padded, cropped on the 1/4 grid
            x = x[:, :, ::-1] if flip else x
            t4, l4, h4, w4 = top // 4, left // 4, ch // 4, cw // 4
            if x.shape[1] < t4 + h4 or x.shape[2] < l4 + w4:
                pad = [(0, 0), (0, max(0, t4 + h4 - x.shape[1])), (0, max(0, l4 + w4 - x.shape[2]))]
                x = np.pad(x, pad, mode="edge")
            return np.ascontiguousarray(x[:, t4:t4 + h4, l4:l4 + w4])

        item = {
            "key_image": image_to_tensor(full(key, 0)),  # (3, h, w)
            "image": image_to_tensor(full(image, 0)),  # (3, h, w)
            "label": label_to_tensor(full(label, IGNORE_INDEX)),  # (h, w)
            "edge": label_to_tensor(full(edge, IGNORE_INDEX)),  # (h, w)
            "pseudo": label_to_tensor(full(np.asarray(maps["pseudo"][t]), IGNORE_INDEX)),  # (h, w)
            "key_logits": torch.from_numpy(quarter(np.asarray(maps["logits"][t - d])).astype(np.float32)),
            "offset": d,
        }
        if self.use_flow:
            j = d - self.cache.offset_range[0]
            flow = quarter(np.asarray(maps["flow"][t, j]).astype(np.float32))  # (2, h4, w4)
            if flip:
                flow[0] = -flow[0]  # mirrored video: content that moved right moves left
            item["flow"] = torch.from_numpy(flow)
        return item
