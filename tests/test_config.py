import json

import pytest

from evss.config import EVSSConfig, config_from_json, from_dict, load_config, preset, to_dict
from evss.errors import ConfigError


def test_presets_roundtrip_through_json():
    for name in ("paper", "official", "light", "tiny"):
        cfg = preset(name)
        assert from_dict(EVSSConfig, json.loads(json.dumps(to_dict(cfg)))) == cfg


def test_paper_and_official_differ_where_the_reference_says():
    p, o = preset("paper"), preset("official")
    assert (p.distortion.w_f, o.distortion.w_f) == (0.5, 0.2)
    assert (p.correction.variant, o.correction.variant) == ("paper", "official")


def test_unknown_key_and_wrong_type_are_named(tmp_path):
    with pytest.raises(ConfigError, match=r"config\.correction: unknown key\(s\) \['use_pmm'\]"):
        config_from_json({"preset": "tiny", "correction": {"use_pmm": False}})
    with pytest.raises(ConfigError, match=r"config\.distortion\.w_f: expected float, got str"):
        config_from_json({"preset": "tiny", "distortion": {"w_f": "half"}})
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(ConfigError, match="bad.json: not valid JSON"):
        load_config(bad)
    with pytest.raises(ConfigError, match="no such file and not a preset"):
        load_config(tmp_path / "missing.json")


def test_overrides_on_a_preset():
    cfg = config_from_json({"preset": "light", "distortion": {"mode": "coarse"}, "correction": {"use_ppm": False}})
    assert cfg.distortion.mode == "coarse" and not cfg.correction.use_ppm and cfg.backbone.width == 0.5


def test_inconsistent_class_counts():
    d = to_dict(preset("tiny"))
    d["backbone"]["num_classes"] = 3
    with pytest.raises(ConfigError, match="num_classes"):
        from_dict(EVSSConfig, d)


def test_presets_trained_here_start_conet_at_warp_only_the_authors_keep_their_init():
    for name in ("paper", "official"):
        assert preset(name).correction.head_init == "random"
    for name in ("light", "tiny", "lite0", "lite1"):
        assert preset(name).correction.head_init == "passthrough"
    # a checkpoint config written before the field existed still loads (the default fills it)
    old = to_dict(preset("light"))
    del old["correction"]["head_init"]
    assert from_dict(EVSSConfig, old).correction.head_init == "random"


def test_the_inference_size_is_a_deployment_setting_of_the_weights():
    """None by default (every frame at its own size), a longer side in pixels when set, read from JSON
    (older checkpoints without the key keep None), impossible values named."""
    assert preset("lite1").inference_size is None
    cfg = config_from_json({"preset": "tiny", "inference_size": 1024})
    assert cfg.inference_size == 1024 and from_dict(EVSSConfig, json.loads(json.dumps(to_dict(cfg)))) == cfg
    old = to_dict(preset("tiny"))
    del old["inference_size"]
    assert from_dict(EVSSConfig, old).inference_size is None
    with pytest.raises(ConfigError, match=r"inference_size must be None or in \[64, 16384\] pixels .* got 10"):
        config_from_json({"preset": "tiny", "inference_size": 10})
    with pytest.raises(ConfigError, match=r"config\.inference_size: expected int, got str"):
        config_from_json({"preset": "tiny", "inference_size": "big"})
