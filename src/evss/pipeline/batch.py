"""Many inputs in one run: which outputs they get, and what counts as already done.

A batch segments every input into ``DIR/<name>.mp4`` (label and map folders likewise under their
roots), where ``<name>`` is the input's path without its suffix when that path is relative and
stays inside the current folder (``clips/day1/a.mp4`` -> ``DIR/clips/day1/a.mp4``), else its file
name; the videos found under a folder input keep their path below it. Two inputs that would write
the same output are an error before any work.

The manifest ``DIR/evss-batch.jsonl`` holds one JSON record per input: its status (``done``,
``failed``, ``skipped`` = done by an earlier run with the same weights and options), frames in and
out, keyframes, frames/s, the weights' hash, the options that change outputs, and the one-line
error of a failure. Workers append a record as each input ends (so a batch killed half-way keeps
what it finished); the run rewrites the manifest as one record per input at its end. An input is
skipped when its last record is complete, was made with the same weights and options, and its
outputs are still there with the sizes and hashes recorded.
"""

from __future__ import annotations

import dataclasses
import fcntl
import glob as globlib
import json
import os
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, Iterable, Sequence

from evss.checkpoint import file_sha256
from evss.errors import EvssError
from evss.media import atomic_write
from evss.media.frames import VIDEO_SUFFIXES, is_glob, list_images
from evss.pipeline.options import OutputOptions, SegmentOptions
from evss.pipeline.outputs import maps_as_video

MANIFEST = "evss-batch.jsonl"
COMPLETE = ("done", "skipped")
# SegmentOptions fields that change no output (where and how fast it runs, what it prints)
RUNTIME_ONLY = ("weights", "threads", "max_memory", "progress", "on_error")


@dataclass(frozen=True)
class BatchItem:
    """One input of a batch and the outputs it writes."""

    source: str  # the input as found: a video file, a frame folder or a glob of frames
    name: str  # its name in the batch (posix, no suffix): the manifest's key and the outputs' stem
    output: Path  # DIR/<name>.mp4
    outputs: OutputOptions  # the label and map outputs of this input (folders under the batch's roots)


def _name(path: str) -> PurePosixPath:
    """An input's name: its relative path without the suffix, or the file name where the path leaves '.'."""
    p = PurePosixPath(Path(path).as_posix().rstrip("/"))
    if p.is_absolute() or ".." in p.parts or not p.parts:
        p = PurePosixPath(Path(path).resolve().name)
    return p.with_suffix("") if p.suffix.lower() in VIDEO_SUFFIXES else p


def read_list(path: Path) -> list[str]:
    """The inputs of a ``--list`` file: one path per line; blank lines and ``#`` comments skipped."""
    try:
        lines = Path(path).read_text().splitlines()
    except OSError as exc:
        raise EvssError(f"--list {path}: {exc.strerror or exc}") from None
    return [line.strip() for line in lines if line.strip() and not line.strip().startswith("#")]


def _videos_under(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in VIDEO_SUFFIXES)


def expand(entries: Iterable[str]) -> list[tuple[str, PurePosixPath]]:
    """(source, name) of every input: folders of videos and globs of videos become their files;
    a frame folder, a glob of frames and anything else (even a missing path) stays one input."""
    out: list[tuple[str, PurePosixPath]] = []
    for entry in entries:
        p = Path(entry)
        if p.is_dir() and not list_images(p) and _videos_under(p):
            out += [(str(v), _name(entry) / PurePosixPath(v.relative_to(p).with_suffix("").as_posix()))
                    for v in _videos_under(p)]
        elif is_glob(entry):
            files = sorted(Path(f) for f in globlib.glob(entry, recursive=True) if Path(f).is_file())
            if files and all(f.suffix.lower() in VIDEO_SUFFIXES for f in files):
                out += [(str(f), _name(str(f))) for f in files]
            else:  # a glob of frames: one clip, named after its folder
                out.append((entry, _name(str(Path(entry).parent))))
        else:
            out.append((entry, _name(entry)))
    return out


def is_batch(inputs: Sequence[str], list_file: Path | None) -> bool:
    """Whether the inputs make a batch (else one input: `evss segment`'s single-file behaviour)."""
    if list_file is not None or len(inputs) != 1:
        return True
    found = expand(inputs)  # a folder or glob of videos is a batch even when it is one argument
    return len(found) != 1 or found[0][0] != inputs[0]


def plan(entries: Sequence[str], out_dir: Path, outputs: OutputOptions) -> list[BatchItem]:
    """The batch's items; EvssError before any work when two inputs would write the same output."""
    if outputs.save_maps is not None and maps_as_video(outputs.save_maps):
        raise EvssError(f"--save-maps {outputs.save_maps}: in a batch it names a folder; each input's maps go to "
                        "FOLDER/<name>/")
    items: list[BatchItem] = []
    seen: dict[str, str] = {}
    for source, name in expand(entries):
        key = name.as_posix()
        if key.lower() in seen:
            raise EvssError(f"{source} and {seen[key.lower()]} would both write {out_dir / (key + '.mp4')}; "
                            "rename one, or give them from different folders")
        seen[key.lower()] = source
        per_input = dataclasses.replace(outputs, save_labels=outputs.save_labels / key if outputs.save_labels else None,
                                        save_maps=outputs.save_maps / key if outputs.save_maps else None)
        items.append(BatchItem(source=source, name=key, output=out_dir / f"{key}.mp4", outputs=per_input))
    if not items:
        raise EvssError("no inputs: give videos, frame folders, globs or --list FILE")
    return items


# ---- what makes two runs' outputs equal -----------------------------------------------------------

def fingerprint(weights_hash: str, options: SegmentOptions, outputs: OutputOptions) -> dict[str, Any]:
    """The weights' hash and every option that changes the outputs."""
    seg = {k: v for k, v in dataclasses.asdict(options).items() if k not in RUNTIME_ONLY}
    out = dataclasses.asdict(outputs)
    out["save_labels"], out["save_maps"] = outputs.save_labels is not None, outputs.save_maps is not None
    out["maps"] = list(outputs.maps)
    return {"weights": weights_hash, "options": {**seg, **out}}


def output_files(item: BatchItem) -> list[Path]:
    """Every file an item's run writes: the video, and the PNGs of its label and map folders."""
    files = [item.output]
    for folder in (item.outputs.save_labels, item.outputs.save_maps):
        if folder is not None and folder.is_dir():
            files += sorted(p for p in folder.rglob("*.png"))
    return files


def describe_outputs(item: BatchItem, root: Path) -> dict[str, dict[str, Any]]:
    """{path relative to ``root``: bytes and sha256} of the video; counts of the label and map PNGs."""
    video = {"bytes": item.output.stat().st_size, "sha256": file_sha256(item.output)}
    rel = os.path.relpath(item.output, root)
    described = {rel: video}
    for folder in (item.outputs.save_labels, item.outputs.save_maps):
        if folder is not None:
            described[os.path.relpath(folder, root)] = {"pngs": sum(1 for _ in folder.rglob("*.png"))}
    return described


def outputs_intact(record: dict[str, Any], root: Path) -> bool:
    """Whether the outputs a record describes are still there, unchanged."""
    for rel, want in (record.get("outputs") or {}).items():
        path = root / rel
        if "sha256" in want:
            if not path.is_file() or path.stat().st_size != want["bytes"] or file_sha256(path) != want["sha256"]:
                return False
        elif not path.is_dir() or sum(1 for _ in path.rglob("*.png")) != want["pngs"]:
            return False
    return bool(record.get("outputs"))


# ---- the manifest -----------------------------------------------------------------------------------

class Manifest:
    """``DIR/evss-batch.jsonl``: records appended as inputs end (by any process), compacted at the end."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.path = self.root / MANIFEST

    def records(self) -> dict[str, dict[str, Any]]:
        """The last record of each input (a line cut short by a crash is ignored)."""
        last: dict[str, dict[str, Any]] = {}
        if not self.path.exists():
            return last
        for line in self.path.read_text(errors="replace").splitlines():
            try:
                rec = json.loads(line)
            except ValueError:
                continue
            if isinstance(rec, dict) and "name" in rec:
                last[rec["name"]] = rec
        return last

    def append(self, record: dict[str, Any]) -> None:
        """One line, under an exclusive lock, flushed to disk: safe from several processes."""
        self.root.mkdir(parents=True, exist_ok=True)
        with open(self.path, "a") as f:
            fcntl.flock(f, fcntl.LOCK_EX)
            try:
                f.write(json.dumps(record, sort_keys=True) + "\n")
                f.flush()
                os.fsync(f.fileno())
            finally:
                fcntl.flock(f, fcntl.LOCK_UN)

    def compact(self, order: Sequence[str]) -> None:
        """Rewrite as one record per input, in the batch's order (inputs of earlier batches after)."""
        last = self.records()
        names = [n for n in order if n in last] + [n for n in last if n not in order]
        text = "".join(json.dumps(last[n], sort_keys=True) + "\n" for n in names)
        atomic_write(self.path, lambda tmp: Path(tmp).write_text(text))

    def is_complete(self, item: BatchItem, record: dict[str, Any] | None, fp: dict[str, Any]) -> bool:
        return (record is not None and record.get("status") in COMPLETE and record.get("weights") == fp["weights"]
                and record.get("options") == fp["options"] and record.get("input") == item.source
                and outputs_intact(record, self.root))
