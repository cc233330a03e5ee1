"""`evss train`'s flags (evss.cli.train) and their conversion into a TrainConfig (evss.train.config)."""

from __future__ import annotations

import argparse
import dataclasses

import pytest

from evss.cli import build_parser
from evss.cli import train as cli_train
from evss.train import config as train_config


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
    config = train_config.config_from_args(args)
    assert (config.crop_size, config.synth_size, config.scale_range, config.color_jitter) == \
        ((64, 128), (32, 64), (0.5, 2.0), 0.25)
    assert (config.holdout, config.extra_data, config.model_set) == (("a*", "b*"), ("synthdrive",), ("distortion.w_f=0.3",))
    assert (config.progress, config.tensorboard, config.out_dir, config.overfit_batch) == (False, False, "o", True)
    assert (config.flow_source, config.amp, config.lambda_edge) == ("dis", "off", 3.0)
    untouched = train_config.config_from_args(parse("flow"))
    assert untouched == dataclasses.replace(train_config.TrainConfig(), stage="flow")  # no flag: the defaults


@pytest.mark.parametrize("argv", [["--crop", "64"], ["--set", "no_equals_sign"], ["--color-jitter", "2"],
                                  ["--scale-range", "0.5"], ["--loss-weights", "1,2,3"]])
def test_malformed_values_are_refused_while_parsing(argv, capsys):
    with pytest.raises(SystemExit):
        parse("backbone", *argv)
    assert "error: argument" in capsys.readouterr().err
