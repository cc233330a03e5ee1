"""Training configuration (evss.train.config): the Table IV ablation switches, --set overrides,
strict TrainConfig files (every shipped one loads)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from evss import train
from evss.errors import ConfigError
from evss.train import ABLATIONS, TrainConfig

CONFIGS = Path(__file__).resolve().parents[2] / "configs"


EXPECTED_ABLATIONS = {
    "full": ({}, (0.2, 0.5, 0.1, 0.2)),
    "flownet-fixed": ({"freeze_flow": True}, None),
    "no-ppm": ({"correction.use_ppm": False}, None),
    "no-ffm3": ({"correction.use_ffm3": False, "correction.use_ffm2": True}, None),
    "no-ffm3-ffm2": ({"correction.use_ffm3": False, "correction.use_ffm2": False}, None),
    "no-concat": ({"correction.concat_warped": False, "distortion.use_warped": True}, None),
    "no-warped": ({"correction.concat_warped": False, "distortion.use_warped": False}, None),
    "coarse-only": ({"distortion.mode": "coarse"}, None),
    "edge-only": ({"distortion.mode": "edge"}, None),
    "wf-0.3": ({"distortion.w_f": 0.3}, None),
    "wf-0.8": ({"distortion.w_f": 0.8}, None),
    "no-les": ({}, (0.2, 0.5, 0.1, 0.0)),
    "no-le": ({}, (0.2, 0.5, 0.0, 0.2)),
    "no-le-les": ({}, (0.2, 0.5, 0.0, 0.0)),
}


def _get(config, dotted: str):
    for part in dotted.split("."):
        config = getattr(config, part)
    return config


@pytest.mark.parametrize("name", sorted(ABLATIONS))
def test_ablation_switches_give_the_table_iv_config(name):
    from evss.config import build_model, preset
    assert set(EXPECTED_ABLATIONS) == set(ABLATIONS)
    fields, weights = EXPECTED_ABLATIONS[name]
    config = TrainConfig(stage="evss", model="tiny", ablation=(name,))
    model_config = train.resolve_model_config(config)
    for key, value in fields.items():
        assert _get(model_config, key) == value, key
    untouched = preset("tiny")
    for key in ("correction.use_ppm", "distortion.w_f", "distortion.mode", "freeze_flow"):
        if key not in fields:
            assert _get(model_config, key) == _get(untouched, key), key
    w = train.loss_weights(config)
    assert (w.warp, w.semantic, w.edge, w.edge_semantic) == (weights or (0.2, 0.5, 0.1, 0.2))
    build_model(model_config)  # every setting builds


def test_set_overrides_win_over_ablations_and_unknown_keys_are_errors():
    config = TrainConfig(stage="evss", model="tiny", ablation=("wf-0.8", "no-ppm"),
                         model_set=("distortion.w_f=0.3", "correction.concat_warped=false",
                                    "correction.head_init=random", "distortion.mode=edge"))
    m = train.resolve_model_config(config)
    assert (m.distortion.w_f, m.correction.use_ppm, m.correction.concat_warped, m.distortion.mode) == \
        (0.3, False, False, "edge")
    with pytest.raises(ConfigError, match="head_init=random too"):  # passthrough has no F^w to pass
        train.resolve_model_config(TrainConfig(stage="evss", model="tiny",
                                               model_set=("correction.concat_warped=false",)))
    with pytest.raises(ConfigError, match="correction has no key 'use_pmm'"):
        train.resolve_model_config(TrainConfig(stage="evss", model="tiny", model_set=("correction.use_pmm=false",)))
    with pytest.raises(ConfigError, match="expected float"):
        train.resolve_model_config(TrainConfig(stage="evss", model="tiny", model_set=("distortion.w_f=high",)))
    with pytest.raises(ConfigError, match="unknown ablation 'no-pmm'"):
        TrainConfig(ablation=("no-pmm",))


def test_training_config_files_are_strict(tmp_path):
    for path in sorted(CONFIGS.glob("*.json")):  # every shipped preset loads and resolves
        config = train.load_train_config(path)
        train.resolve_model_config(config)
        assert path.stem.startswith(config.stage)
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"stage": "evss", "batch_sise": 4}))
    with pytest.raises(ConfigError, match=r"bad\.json.*unknown key\(s\) \['batch_sise'\]"):
        train.load_train_config(bad)
    bad.write_text(json.dumps({"stage": "evss", "steps": "many"}))
    with pytest.raises(ConfigError, match=r"bad\.json\.steps: expected int"):
        train.load_train_config(bad)
