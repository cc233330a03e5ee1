"""benchmarks/streets_heldout.py: the streets bars of a 19-class checkpoint, on a few real frames."""

from __future__ import annotations

import json
import subprocess
import sys

from conftest import DATA, ROOT, need_path

SCRIPT = ROOT / "benchmarks" / "streets_heldout.py"


def test_it_scores_held_out_cityscapes_and_collapsed_camvid_per_frame(tmp_path, tiny_streets_weights, tiny_weights):
    need_path(DATA / "cityscapes_pix2pix" / "train", "shared Cityscapes pix2pix data")
    need_path(DATA / "camvid" / "val", "shared CamVid data")
    out = tmp_path / "r.json"
    r = subprocess.run([sys.executable, str(SCRIPT), str(tiny_streets_weights), "--limit", "2", "--json", str(out)],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    res = json.loads(out.read_text())
    assert res["cityscapes"]["frames"] == 2 and res["camvid"]["frames"] == 2
    assert len(res["cityscapes"]["per_class_iou"]) == 19 and len(res["camvid"]["per_class_iou"]) == 11
    scores = (res["cityscapes"]["miou"], res["camvid"]["miou"], res["camvid"]["miou_argmax"])
    assert all(0 <= v <= 100 for v in scores)
    assert "held-out Cityscapes, 19 classes, 256x512" in r.stdout and "bar >= 72" in r.stdout
    assert "--limit 2: not the full sets" in r.stdout
    r = subprocess.run([sys.executable, str(SCRIPT), str(tiny_weights), "--limit", "1"], capture_output=True,
                       text=True, timeout=600)
    assert r.returncode != 0 and "a camvid model (11 classes)" in r.stderr
