"""safe_join: paths read from manifests and list files stay inside their dataset root."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
from PIL import Image

from evss.data._paths import safe_join
from evss.errors import DataError


def test_relative_paths_inside_the_root_are_joined(tmp_path):
    assert safe_join(tmp_path, "clip_0000") == tmp_path / "clip_0000"
    assert safe_join(tmp_path, "a/b/../c.png") == tmp_path / "a/b/../c.png"  # '..' that stays inside
    assert safe_join(tmp_path, "./x") == tmp_path / "x"
    assert safe_join(tmp_path, "not/there/yet.png", source="m.json")  # need not exist


@pytest.mark.parametrize("entry, why", [
    ("/etc/passwd", "is absolute"),
    ("C:\\Windows\\win.ini", "is absolute"),
    ("C:relative", "is absolute"),
    ("\\\\server\\share\\x", "is absolute"),
    ("..", "climbs out"),
    ("../sibling/x.png", "climbs out"),
    ("a/../../x.png", "climbs out"),
    ("a\\..\\..\\x.png", "climbs out"),
    ("", "not a non-empty string"),
    (None, "not a non-empty string"),
    (3, "not a non-empty string"),
    ("a\x00b", "NUL byte"),
])
def test_escapes_are_refused_naming_the_source(tmp_path, entry, why):
    with pytest.raises(DataError, match=f"^list.txt:3: path entry .*{why}"):
        safe_join(tmp_path, entry, source="list.txt:3")


def test_symlinks_leading_out_are_refused_but_a_linked_root_is_fine(tmp_path):
    root, outside = tmp_path / "root", tmp_path / "outside"
    (root / "inside").mkdir(parents=True)
    outside.mkdir()
    os.symlink(outside, root / "escape")
    os.symlink(root / "inside", root / "alias")
    with pytest.raises(DataError, match="leads out of .* through a symbolic link"):
        safe_join(root, "escape/x.png")
    assert safe_join(root, "alias/x.png") == root / "alias/x.png"  # a link that stays inside
    os.symlink(root, tmp_path / "linked_root")
    assert safe_join(tmp_path / "linked_root", "inside") == tmp_path / "linked_root" / "inside"


def test_camvid_list_file_entries_cannot_leave_the_root(tmp_path):
    from evss.data.camvid import CamVidVideo
    root = tmp_path / "camvid"
    frame = root / "video_image" / "0001TP" / "0001TP_000010.png"
    frame.parent.mkdir(parents=True)
    Image.fromarray(np.zeros((8, 16, 3), np.uint8)).save(frame)
    (root / "11labels").mkdir()
    secret = tmp_path / "secret.png"
    Image.fromarray(np.zeros((8, 16), np.uint8)).save(secret)
    lst = tmp_path / "list.txt"
    lst.write_text("video_image/0001TP/0001TP_000010.png ../secret.png\n")
    with pytest.raises(DataError, match=r"list.txt:1: path entry '../secret.png' climbs out of"):
        CamVidVideo(root, list_file=lst)
    lst.write_text(f"video_image/0001TP/0001TP_000010.png {secret}\n")
    with pytest.raises(DataError, match=r"list.txt:1: path entry .* is absolute"):
        CamVidVideo(root, list_file=lst)


def test_synthdrive_manifest_names_are_checked(tmp_path):
    from evss.data.synthdrive import SynthDriveConfig, SynthDriveDataset, read_manifest, write_dataset
    root = tmp_path / "sd"
    write_dataset(root, clips=1, seed=0, config=SynthDriveConfig(height=32, width=48, frames=1), progress=False)
    manifest = json.loads((root / "manifest.json").read_text())
    for bad, why in (("../..", "climbs out"), ("/tmp", "is absolute"), (["x"], "not a non-empty string")):
        manifest["clips"][0]["name"] = bad
        (root / "manifest.json").write_text(json.dumps(manifest))
        with pytest.raises(DataError, match=why):
            SynthDriveDataset(root)
    manifest["clips"][0]["name"] = "clip_0000"
    manifest["clips"][0]["frames"] = "many"
    (root / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(DataError, match="frames 'many', expected an integer"):
        read_manifest(root)
    manifest["clips"][0]["frames"] = 1
    manifest["config"]["height"] = "tall"
    (root / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(DataError, match=r"config.height: expected int, got str 'tall'"):
        read_manifest(root)
