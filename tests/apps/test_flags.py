"""Every command's flags (evss.cli.*): the shared argument types name the flag at fault, the flag
modules stay free of torch, and their literal choices agree with the library's constants."""

from __future__ import annotations

import subprocess
import sys

import pytest

from evss.cli import build_parser, main


def parse_error(capsys, argv: list[str]) -> str:
    """Parse ``evss ARGV``; assert argparse's exit status 2 and return the error line."""
    with pytest.raises(SystemExit) as exc:
        build_parser().parse_args(argv)
    assert exc.value.code == 2
    lines = [line for line in capsys.readouterr().err.splitlines() if ": error: " in line]
    assert len(lines) == 1, lines
    return lines[0]


@pytest.mark.parametrize("argv, needle", [
    # HxW: one parser (evss.cli.args.size) for every command
    (["eval", "--weights", "w", "--size", "256"], "argument --size: size '256' is not HxW"),
    (["eval", "--weights", "w", "--costs-size", "0x5"], "argument --costs-size: size '0x5' must be positive"),
    (["export", "-o", "d", "--size", "axb"], "argument --size: size 'axb' is not HxW"),
    (["bench", "--size", "16x64"], "argument --size: size '16x64': each side must be at least 32"),
    (["bench", "--size", "big"], "argument --size: size 'big' is not HxW"),
    # numbers in [0, 1]: evss.cli.args.unit_float
    (["segment", "in.mp4", "-o", "o.mp4", "--alpha", "2"], "argument --alpha: '2' is not in [0, 1]"),
    (["segment", "in.mp4", "-o", "o.mp4", "--share", "x"], "argument --share: 'x' is not a number"),
    (["segment", "in.mp4", "-o", "o.mp4", "--residual", "-1"], "argument --residual: '-1' is not in [0, 1]"),
    # intervals: evss.cli.args.int_list
    (["eval", "--weights", "w", "--intervals", "0-3"], "argument --intervals: '0-3': every value must be >= 1"),
    (["eval", "--weights", "w", "--intervals", "a"], "argument --intervals: 'a' is not a list of integers"),
    (["segment", "in.mp4", "-o", "o.mp4", "--maps", "fine,nope"], "argument --maps: --maps takes a comma list"),
])
def test_a_bad_value_names_its_flag(capsys, argv, needle):
    line = parse_error(capsys, argv)
    assert line.startswith(f"evss {argv[0]}: error: ") and needle in line, line


def test_values_are_parsed_once_by_the_shared_types():
    p = build_parser()
    a = p.parse_args(["eval", "--weights", "w", "--size", "64X128", "--intervals", "1-3,7", "--costs-size", ""])
    assert a.size == (64, 128) and a.intervals == (1, 2, 3, 7) and a.costs_size is None
    a = p.parse_args(["eval", "--weights", "w"])
    assert a.size == (256, 512) and a.intervals == tuple(range(1, 10)) and a.costs_size == (512, 1024)
    assert p.parse_args(["export", "-o", "d"]).size == (256, 512)
    assert p.parse_args(["bench", "--size", "64x128"]).size == (64, 128)
    a = p.parse_args(["segment", "in.mp4", "-o", "o.mp4", "--alpha", "0.25", "--maps", "edge, fine"])
    assert a.alpha == 0.25 and a.share == 0.25 and a.residual == 0.08 and a.maps == ("edge", "fine")


def test_the_export_size_must_fit_the_networks(tmp_path, capsys, tiny_weights):
    assert main(["export", "--weights", str(tiny_weights), "--size", "100x128", "-o", str(tmp_path)]) == 2
    assert "multiples of 32, e.g. 128x128" in capsys.readouterr().err


def test_flag_modules_import_neither_torch_nor_the_commands():
    code = ("import sys\n"
            "import evss.cli\n"
            "for name in ('segment', 'evaluate', 'bench', 'export', 'demo', 'synth', 'convert'):\n"
            "    __import__(f'evss.cli.{name}')\n"
            "heavy = sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'numpy', 'av', 'cv2')\n"
            "               or m.startswith(('evss.apps', 'evss.media')))\n"
            "print(heavy)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_literal_choices_agree_with_the_library():
    from evss import checkpoint, flow_sources, segmenter, visualize
    from evss.apps import export as export_app
    from evss.cli import bench as bench_flags
    from evss.cli import export as export_flags
    from evss.cli import segment as segment_flags
    from evss.media import ON_ERROR
    from evss.models.distortion import MAP_MODES
    from evss.pipeline.outputs import MAP_NAMES

    assert segment_flags.FLOW_SOURCES == bench_flags.FLOW_SOURCES == flow_sources.FLOW_SOURCES
    assert segment_flags.LAYOUTS == visualize.LAYOUTS
    from evss import backends
    from evss.cli import args as shared_args
    assert shared_args.BACKENDS == backends.BACKENDS and shared_args.PRECISIONS == backends.PRECISIONS
    assert shared_args.PROPAGATIONS == segmenter.PROPAGATIONS
    assert segment_flags.MAP_NAMES == MAP_NAMES and set(MAP_NAMES) == set(MAP_MODES)
    assert segment_flags.DEFAULT_WEIGHTS == checkpoint.DEFAULT_WEIGHTS
    assert export_flags.MIN_OPSET == export_app.MIN_OPSET
    choices = {a.dest: a.choices for a in build_parser()._subparsers._group_actions[0].choices["segment"]._actions}
    assert tuple(choices["mode"]) == segmenter.MODES and tuple(choices["on_error"]) == ON_ERROR
    from evss.config import PRESETS
    train = build_parser()._subparsers._group_actions[0].choices["train"]
    model_help = next(a.help for a in train._actions if a.dest == "model")
    assert model_help.startswith(f"preset ({', '.join(PRESETS)})"), model_help  # every preset named


def test_eval_data_choices_agree_with_the_library():
    from evss.cli import evaluate as eval_flags
    from evss.evaluation import DATA_KINDS
    assert eval_flags.DATA_KINDS == DATA_KINDS
    a = build_parser().parse_args(["eval", "--weights", "w"])
    assert a.intervals_given is False and a.methods is None and a.split is None and a.holdout_list is None
    a = build_parser().parse_args(["eval", "--weights", "w", "--intervals", "1", "--data", "cityscapes_pix2pix"])
    assert a.intervals == (1,) and a.intervals_given is True
