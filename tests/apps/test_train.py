"""`evss train`: its flags (evss.cli.train), their conversion into a TrainConfig (evss.apps.train),
the --config file under the flags, and a stage run from the command line."""

from __future__ import annotations

import argparse
import dataclasses
import subprocess
import sys
from pathlib import Path

import pytest

from evss import train
from evss.apps.train import config_from_args
from evss.cli import build_parser
from evss.cli import train as cli_train
from evss.errors import ConfigError
from evss.train import config as train_config

CONFIGS = Path(__file__).resolve().parents[2] / "configs"


def parse(*argv: str) -> argparse.Namespace:
    return build_parser().parse_args(["train", *argv])


def test_the_flags_offer_what_the_config_accepts():
    assert cli_train.STAGES == train_config.STAGES
    assert cli_train.DATA_SOURCES == train_config.DATA_SOURCES
    assert cli_train.AMP_MODES == train_config.AMP_MODES


def test_every_flag_reaches_its_config_field():
    args = parse("backbone", "--model", "tiny", "--set", "distortion.w_f=0.3", "--data", "camvid", "--data-root", "d",
                 "--crop", "64x128", "--synth-size", "32x64", "--scale-range", "0.5,2", "--color-jitter", "0.25",
                 "--holdout", "a*", "--holdout", "b*", "--extra-data", "synthdrive", "--amp", "off", "--no-progress",
                 "--no-tensorboard", "--out", "o", "--overfit-batch", "--flow", "dis", "--loss-weights", "1,2,3,4")
    config = config_from_args(args)
    assert (config.crop_size, config.synth_size, config.scale_range, config.color_jitter) == \
        ((64, 128), (32, 64), (0.5, 2.0), 0.25)
    assert (config.holdout, config.extra_data, config.model_set) == \
        (("a*", "b*"), ("synthdrive",), ("distortion.w_f=0.3",))
    assert (config.progress, config.tensorboard, config.out_dir, config.overfit_batch) == (False, False, "o", True)
    assert (config.flow_source, config.amp, config.lambda_edge) == ("dis", "off", 3.0)
    untouched = config_from_args(parse("flow"))
    assert untouched == dataclasses.replace(train_config.TrainConfig(), stage="flow")  # no flag: the defaults


@pytest.mark.parametrize("argv", [["--crop", "64"], ["--set", "no_equals_sign"], ["--color-jitter", "2"],
                                  ["--scale-range", "0.5"], ["--loss-weights", "1,2,3"]])
def test_malformed_values_are_refused_while_parsing(argv, capsys):
    with pytest.raises(SystemExit):
        parse("backbone", *argv)
    assert "error: argument" in capsys.readouterr().err


def test_cli_flags_override_the_config_file(tmp_path):
    from evss.cli import build_parser
    args = build_parser().parse_args(
        ["train", "evss", "--config", str(CONFIGS / "evss_tiny_test.json"), "--steps", "7", "--crop", "32x64",
         "--ablation", "no-le,no-ppm", "--set", "distortion.w_f=0.3", "--loss-weights", "1,2,3,4",
         "--out", str(tmp_path), "--resume"])
    config = config_from_args(args)
    assert (config.stage, config.model, config.steps, config.crop_size, config.batch_size) == \
        ("evss", "tiny", 7, (32, 64), 2)
    assert config.ablation == ("no-le", "no-ppm") and config.model_set == ("distortion.w_f=0.3",)
    assert (config.lambda_warp, config.lambda_edge_semantic) == (1.0, 4.0)
    assert (config.out_dir, config.resume) == (str(tmp_path), True)
    assert train.loss_weights(config).edge == 0.0  # the ablation wins over the flag
    with pytest.raises(ConfigError, match="is a 'evss' config, not 'flow'"):
        config_from_args(build_parser().parse_args(
            ["train", "flow", "--config", str(CONFIGS / "evss_tiny_test.json")]))


def test_cli_runs_a_stage_and_its_flags_import_no_torch(tmp_path):
    from evss.cli import main as cli_main
    code = cli_main(["train", "backbone", "--config", str(CONFIGS / "backbone_tiny_test.json"), "--steps", "2",
                     "--out", str(tmp_path), "--no-progress", "--no-tensorboard"])
    assert code == 0 and (tmp_path / "last.safetensors").is_file() and (tmp_path / "metrics.jsonl").is_file()
    probe = subprocess.run([sys.executable, "-c", "import sys, evss.cli; evss.cli.build_parser(); "
                            "print('torch' in sys.modules)"],
                           capture_output=True, text=True, check=True)
    assert probe.stdout.strip() == "False"
    assert cli_main(["train", "evss", "--config", str(CONFIGS / "evss_tiny_test.json"), "--teacher",
                     str(tmp_path / "missing.safetensors"), "--out", str(tmp_path / "e")]) == 2
