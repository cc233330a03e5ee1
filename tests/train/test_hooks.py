"""The loop's after-step hooks: the metrics log and the held-out evaluation (with best.safetensors)."""

from __future__ import annotations

import json

from evss.checkpoint import read_metadata
from evss.config import build_model, preset
from evss.train.hooks import Evaluation, MetricsLog, best_eval, trim_metrics


def lines(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_the_log_writes_every_nth_step_and_the_last(tmp_path):
    shown = []
    log = MetricsLog(tmp_path, start=0, every=2, tensorboard=False, resume=False, is_main=True, show=shown.append)
    for step in range(1, 6):
        log.after_step(step, {"step": step, "lr": 0.1, "a": 1.0, "total": 2.0, "skipped": 0.0}, last=step == 5)
    log.close()
    assert [r["step"] for r in lines(tmp_path / "metrics.jsonl")] == [2, 4, 5]
    assert shown[-1] == {"a": "1.000", "total": "2.000"}
    silent = MetricsLog(tmp_path / "other", start=0, every=1, tensorboard=False, resume=False, is_main=False)
    silent.after_step(1, {"step": 1}, last=True)  # only rank 0 writes
    assert not (tmp_path / "other").exists()


def test_a_resumed_log_drops_the_steps_it_will_redo(tmp_path):
    path = tmp_path / "metrics.jsonl"
    # the last line was cut off when the run was killed
    path.write_text('{"step": 1, "miou": 0.5}\n{"step": 2}\n{"step": 3, "miou": 0.7}\n{"step": 4, "to')
    assert best_eval(path) == 0.7
    trim_metrics(path, 2)
    assert lines(path) == [{"step": 1, "miou": 0.5}, {"step": 2}] and best_eval(path) == 0.5


def test_evaluation_runs_between_steps_and_at_the_end_and_keeps_the_best(tmp_path):
    config = preset("tiny")
    scores = iter([0.4, 0.3, 0.6])
    log = MetricsLog(tmp_path, start=0, every=100, tensorboard=False, resume=False, is_main=True)
    said = []
    evaluation = Evaluation(lambda: {"miou": next(scores)}, every=2, log=log, model=build_model(config),
                            model_config=config, out_dir=tmp_path, is_main=True, say=said.append)
    for step in range(1, 5):
        evaluation.after_step(step, {"step": step}, last=step == 4)  # step 4, the last, waits for the end
    assert [r["step"] for r in evaluation.results] == [2]
    assert read_metadata(tmp_path / "best.safetensors")["step"] == "2"
    evaluation.run(3)  # worse: best.safetensors stays
    assert read_metadata(tmp_path / "best.safetensors")["step"] == "2"
    evaluation.at_end(4)
    assert [r["step"] for r in evaluation.results] == [2, 3, 4] and said[-1] == "step 4: miou 0.6000"
    assert read_metadata(tmp_path / "best.safetensors")["miou"] == "0.600000"
    assert [r["miou"] for r in lines(tmp_path / "metrics.jsonl")] == [0.4, 0.3, 0.6]
