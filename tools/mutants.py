"""Mutation check: plant plausible bugs one at a time in a copy of the project and run its tests.

    python tools/mutants.py            # every mutant; exit 1 if any survives or does not apply
    python tools/mutants.py -k warp    # only the mutants whose name contains "warp"
    python tools/mutants.py --list     # the mutants, without running anything

The project (src, tests, configs, pyproject.toml, ...) is copied to a temporary folder next to a
link to ../shared, so the copy's tests find the same reference data. Each mutant is a list of
textual edits of one file; each edit's old text must occur exactly once in the pristine file (else
the mutant is reported as "does not apply" and the check fails: the code moved and the list needs
updating). For each mutant, the test files most likely to catch it run first; only if they all pass
does the whole suite run (``python -m pytest -x -q``). The copy's ``src`` is first on PYTHONPATH, ahead
of the editable install, and the script checks that ``evss`` is imported from the copy. Before any
mutant, those test files must pass on the unmutated copy.

Output: one row per mutant with "caught" (and the first failing test) or "survived", and the time.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
COPIED = ("src", "tests", "configs", "recipes", "tools", "pyproject.toml", "README.md", "setup.cfg", "setup.py")
IGNORED = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info", ".pytest_cache")


@dataclass(frozen=True)
class Mutant:
    name: str  # what the bug is, as a reviewer would say it
    file: str  # relative to the project root
    edits: tuple[tuple[str, str], ...]  # (old text, new text), each old text exactly once in the file
    tests: tuple[str, ...] = field(default=())  # test files most likely to catch it, run first


M = Mutant
MUTANTS: tuple[Mutant, ...] = (
    # ---- Algorithm 1 in the streaming segmenter ------------------------------------------------------
    M("non-keyframes propagate the keyframe's features, not the warped ones (Alg. 1 line 18)",
      "src/evss/segmenter.py",
      (("            self._feat = warp(self._feat, flow)  # (1, C, h, w)  line 18: F_k <- F^w_i (F^m: below)\n"
        "            return self._feat", "            return warp(self._feat, flow)"),),
      ("tests/test_segmenter.py",)),
    M("composed propagation: the flows are not accumulated (one step's flow from the keyframe)",
      "src/evss/segmenter.py", (("self._flow = compose_flows(self._flow, flow)", "self._flow = flow"),),
      ("tests/test_segmenter.py",)),
    M("composed propagation: the flows are summed without warping (wrong composition)",
      "src/evss/models/warp.py", (("step + warp(earlier, step)", "step + earlier"),),
      ("tests/test_segmenter.py", "tests/models/test_warp.py")),
    M("P_k <- P_i never updated (Alg. 1 line 19)", "src/evss/segmenter.py",
      (('        if (self.config.coarse_reference or self.model.distortion.coarse_reference) == "previous":\n'
        '            self._pred = pred\n', ""),),
      ("tests/test_segmenter.py",)),
    M("the weights' coarse reference ignored (P_k always updated)", "src/evss/segmenter.py",
      (("(self.config.coarse_reference or self.model.distortion.coarse_reference)",
        "(self.config.coarse_reference or \"previous\")"),), ("tests/test_segmenter.py",)),
    M("merged propagation carries F^w, not F^m", "src/evss/segmenter.py",
      (("            self._feat = merged  # (1, C, h, w)", "            pass  # (1, C, h, w)"),),
      ("tests/test_segmenter.py",)),
    M("I_k <- I_i never updated (Alg. 1 line 20)", "src/evss/segmenter.py",
      (("        self._image = image  # line 20: I_k <- I_i\n", ""),), ("tests/test_segmenter.py",)),
    M("fusion skipped: the warped features are the output", "src/evss/segmenter.py",
      (('merged = parts["merged_logits"]', "merged = warped"),), ("tests/test_segmenter.py",)),
    M("keyframe interval off by one (since_key > interval)", "src/evss/keyframes.py",
      (("return since_key >= self.interval", "return since_key > self.interval"),),
      ("tests/test_segmenter.py", "tests/test_keyframes.py")),
    M("warped labels reported as the final labels (CL = 0 in the segmenter)", "src/evss/segmenter.py",
      (("res.warped_labels = self._labels(warped)\n", "res.warped_labels = labels\n"),),
      ("tests/test_segmenter.py", "tests/evaluation/test_protocol.py")),
    # ---- warp and distortion maps (Eqs. 1, 3-5) -------------------------------------------------------
    M("flipped warp direction (pos = grid - flow)", "src/evss/models/warp.py",
      (("+ flow  # (N, 2, H, W)", "- flow  # (N, 2, H, W)"),), ("tests/models/test_warp.py", "tests/test_segmenter.py")),
    M("the max combine falls back to Eq. 4's weighted sum", "src/evss/models/distortion.py",
      (('if config.combine == "max":', 'if config.combine == "union":'),), ("tests/models/test_distortion.py",)),
    M("Eq. 4 with w_f and 1 - w_f swapped", "src/evss/models/distortion.py",
      (("return config.w_f * coarse + (1.0 - config.w_f) * edge", "return (1.0 - config.w_f) * coarse + config.w_f * edge"),),
      ("tests/models/test_distortion.py",)),
    M("Eq. 3 inverted: coarse map marks the unchanged labels", "src/evss/models/distortion.py",
      (("(class_argmax(warped_logits) != key_pred)", "(class_argmax(warped_logits) == key_pred)"),),
      ("tests/models/test_distortion.py", "tests/test_segmenter.py")),
    M("Eq. 5 with M^f and 1 - M^f swapped", "src/evss/models/distortion.py",
      (("return (1.0 - fine) * warped + fine * updated", "return fine * warped + (1.0 - fine) * updated"),),
      ("tests/models/test_distortion.py", "tests/test_segmenter.py")),
    # ---- evaluation (Eqs. 8, 9) -----------------------------------------------------------------------
    M("TC (Eq. 8) warps the previous prediction by the negated flow", "src/evss/metrics.py",
      (("warped = warp_labels(prev_labels, flow)", "warped = warp_labels(prev_labels, -flow)"),),
      ("tests/evaluation/test_protocol.py", "tests/test_metrics.py")),
    M("TC by place counts the pair at its first frame (t - 1 mod n)", "src/evss/evaluation/protocol.py",
      (("position=t % tc_interval", "position=(t - 1) % tc_interval"),), ("tests/evaluation/test_protocol.py",)),
    M("per-clip TC (Eq. 8) gets no pairs, only the by-place matrices do", "src/evss/metrics.py",
      (("self._current += pair", "pass"),), ("tests/evaluation/test_protocol.py", "tests/test_metrics.py")),
    M("TC (Eq. 8) ignores the valid mask", "src/evss/metrics.py",
      (("if valid is not None:  # pixels with no true correspondence",
        "if False:  # pixels with no true correspondence"),),
      ("tests/evaluation/test_protocol.py", "tests/test_metrics.py")),
    M("corrected labels (Eq. 9) always 0 in the evaluation", "src/evss/evaluation/protocol.py",
      (("tally.corrected[d].append(corrected_labels(r.warped_labels, r.labels))", "tally.corrected[d].append(0.0)"),),
      ("tests/evaluation/test_protocol.py",)),
    M("interval protocol: keyframe d - 1 frames before the scored frame", "src/evss/evaluation/protocol.py",
      (("runs[t - d].append((t, d))", "runs[t - d + 1].append((t, d))"),), ("tests/evaluation/test_protocol.py",)),
    M("demo: TC warps the previous labels by the negated flow", "src/evss/apps/demo.py",
      (("add_pair(prev, scored, clip.flow_bwd[t]", "add_pair(prev, scored, -clip.flow_bwd[t]"),),
      ("tests/apps/test_demo.py",)),
    M("demo: TC scores occluded pixels", "src/evss/apps/demo.py",
      (("clip.flow_bwd[t], ~clip.occlusion[t])", "clip.flow_bwd[t], None)"),), ("tests/apps/test_demo.py",)),
    M("evss segment ignores --keyframe-interval", "src/evss/pipeline/session.py",
      (("SegmenterConfig(keyframe_interval=options.keyframe_interval, mode=mode,\n", "SegmenterConfig(mode=mode,\n"),),
      ("tests/apps/test_segment_command.py",)),
    M("evss segment ignores --propagation", "src/evss/pipeline/session.py",
      (("propagation=options.propagation),", "),"),), ("tests/apps/test_segment_command.py",)),
    M("segment_video drops the label folder option", "src/evss/apps/segment.py",
      (("save_labels=args.save_labels, ", ""),), ("tests/apps/test_segment_command.py",)),
    M("a batch re-run skips inputs done with other options", "src/evss/pipeline/batch.py",
      (('and record.get("options") == fp["options"]', ''),), ("tests/pipeline/test_batch.py",)),
    M("a batch re-run trusts outputs changed since", "src/evss/pipeline/batch.py",
      (("and outputs_intact(record, self.root))", ")"),), ("tests/pipeline/test_batch.py",)),
    M("stream_video yields labels at the model's size", "src/evss/pipeline/stream.py",
      (("labels=resize_labels(r.labels, h, w),", "labels=r.labels,"),), ("tests/pipeline/test_segment.py",)),
    M("evss segment keeps the outputs of a failed run (sinks never discarded)", "src/evss/pipeline/outputs.py",
      (("                if keep and error is None:", "                if error is None:"),),
      ("tests/pipeline/test_outputs.py", "tests/reliability/test_faults.py")),
    M("mIoU counts absent classes as 0", "src/evss/metrics.py",
      (("return float(np.nanmean(iou)) if np.isfinite(iou).any()", "return float(np.mean(np.nan_to_num(iou))) if np.isfinite(iou).any()"),),
      ("tests/test_metrics.py",)),
    # ---- losses and the EVSS training stage (Eqs. 6, 7) -------------------------------------------------
    M("a loss term (L_es) left out of the total", "src/evss/losses.py",
      (('("edge", weights.edge), ("edge_semantic", weights.edge_semantic)):', '("edge", weights.edge)):'),),
      ("tests/test_losses.py", "tests/train/test_stage_losses.py")),
    M("L_es silently skipped for any weight below 1", "src/evss/losses.py",
      (("if weights.edge_semantic > 0:", "if weights.edge_semantic > 1:"),),
      ("tests/test_losses.py", "tests/train/test_stage_losses.py")),
    M("L_e class weights swapped (w_pos = N_pos / N)", "src/evss/losses.py",
      (("w_pos, w_neg = n_neg / n, n_pos / n", "w_pos, w_neg = n_pos / n, n_neg / n"),),
      ("tests/test_losses.py", "tests/train/test_stage_losses.py")),
    M("Eq. 7 mask inverted (M^f < 0.5)", "src/evss/losses.py",
      (("target = torch.where(m > 0.5, pseudo_label,", "target = torch.where(m < 0.5, pseudo_label,"),),
      ("tests/test_losses.py", "tests/train/test_stage_losses.py")),
    M("EVSS-stage pseudo-label taken from I_k instead of I_i", "src/evss/train/stages.py",
      (("pseudo = upsample4(net.backbone(image).float(), size)", "pseudo = upsample4(net.backbone(key).float(), size)"),),
      ("tests/train/test_stage_losses.py",)),
    M("teacher cache: pseudo-label of I_k instead of I_i", "src/evss/train/teacher_cache.py",
      (('maps["pseudo"][t]', 'maps["pseudo"][t - d]'),), ("tests/train/test_stage_losses.py",)),
    M("teacher cache: keyframe features of I_i instead of I_k", "src/evss/train/teacher_cache.py",
      (('maps["logits"][t - d]', 'maps["logits"][t]'),), ("tests/train/test_stage_losses.py",)),
    M("L_s given F^u and L_es given F^m (terms swapped)", "src/evss/losses.py",
      (("f_m = _up(out.merged_logits, size)", "f_m = _up(out.updated_logits, size)"),
       ("f_u = _up(out.updated_logits, size)", "f_u = _up(out.merged_logits, size)")),
      ("tests/train/test_stage_losses.py",)),
    M("edge-semantics weight silently zero in the EVSS stage", "src/evss/train/stages.py",
      (("    weights = loss_weights(config)\n",
        "    weights = LossWeights(**{**vars(loss_weights(config)), \"edge_semantic\": 0.0})\n"),),
      ("tests/train/test_stage_losses.py",)),
    M("edge-semantics lambda dropped when the config is read", "src/evss/train/config.py",
      (('edge_semantic=values["lambda_edge_semantic"])', "edge_semantic=0.0)"),),
      ("tests/train/test_stage_losses.py", "tests/train/test_train_config.py")),
    # ---- checkpoints and resuming ---------------------------------------------------------------------
    M("model checkpoints written in place instead of temp-and-rename", "src/evss/checkpoint.py",
      (("atomic_write(path, lambda tmp: save_file(state, str(tmp), metadata=meta))",
        "save_file(state, str(path), metadata=meta)"),), ("tests/test_checkpoint.py",)),
    M("atomic_write writes to the final path", "src/evss/media/atomic.py",
      (("        write(Path(tmp))\n", "        write(path)\n"),), ("tests/test_checkpoint.py",)),
    M("atomic_write leaves its temporary behind when interrupted", "src/evss/media/atomic.py",
      (("    except BaseException:\n        Path(tmp).unlink(missing_ok=True)\n        raise\n",
        "    except BaseException:\n        raise\n"),), ("tests/test_checkpoint.py",)),
    M("training state written in place instead of temp-and-rename", "src/evss/train/state.py",
      (("atomic_write(out_dir / STATE_FILE, lambda tmp: torch.save(state, str(tmp)))",
        "torch.save(state, str(out_dir / STATE_FILE))"),), ("tests/test_checkpoint.py",)),
    M("optimizer state skipped on resume", "src/evss/train/state.py",
      (('        optimizer.load_state_dict(state["optimizer"])\n', ""),), ("tests/train/test_stages.py",)),
    M("scheduler state skipped on resume", "src/evss/train/state.py",
      (('        scheduler.load_state_dict(state["scheduler"])\n', ""),), ("tests/train/test_stages.py",)),
    M("resumed cached run checks the cache against a fresh backbone", "src/evss/train/stages.py",
      (('            load_part(model.backbone, str(output_dir(config) / MODEL_FILE), "backbone", "--resume")\n',
        "            pass\n"),), ("tests/train/test_stages.py",)),
    M("teacher cache ignores the frames' content", "src/evss/train/teacher_cache.py",
      (('    if [q["digest"] for q in manifest["sequences"]] != [q["digest"] for q in sequences]:',
        '    if False:'),), ("tests/train/test_teacher_cache.py",)),
    M("CoNet head starts random instead of at F^w", "src/evss/models/correction.py",
      (("            passthrough_init(self.predict_cc, decoder_channels=d4)\n", "            pass\n"),),
     ("tests/models/test_correction.py",)),
    M("evss eval scores --variant rows with the learned FlowNet", "src/evss/evaluation/variants.py",
      (("segmenter_overrides=prop + seg, flow=own_flow,", "segmenter_overrides=prop + seg,"),),
     ("tests/evaluation/test_variants.py",)),
    M("evss eval never feeds the codec vectors to [mv] rows (they warp with zero flow)",
      "src/evss/evaluation/protocol.py", (("        method.flow.feed(seq.fields[t])", "        pass"),),
      ("tests/evaluation/test_protocol.py",)),
    M("--propagation not passed to evss eval's rows", "src/evss/evaluation/variants.py",
      (('prop = (("propagation", propagation),)', "prop = ()"),), ("tests/evaluation/test_variants.py",)),
    M("evss eval scores a 19-class model on CamVid labels without its label sets", "src/evss/evaluation/protocol.py",
      (("                          label_sets=method.label_sets)", "                          label_sets=None)"),),
      ("tests/evaluation/test_protocol.py",)),
    M("evss segment ignores the weights' inference size", "src/evss/pipeline/session.py",
      (("results_only=outputs is None, maps=return_maps, max_side=inference)",
        "results_only=outputs is None, maps=return_maps, max_side=None)"),), ("tests/pipeline/test_segment.py",)),
)


def copy_project(dest: Path) -> Path:
    """dest/evss (the project) beside dest/shared (a link to ../shared when it exists)."""
    work = dest / "evss"
    work.mkdir()
    for name in COPIED:
        src = ROOT / name
        if src.is_dir():
            shutil.copytree(src, work / name, ignore=IGNORED, symlinks=True)
        elif src.is_file():
            shutil.copy2(src, work / name)
    shared = ROOT.parent / "shared"
    if shared.exists():
        (dest / "shared").symlink_to(shared, target_is_directory=True)
    return work


def environment(work: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(work / "src"), *filter(None, [env.get("PYTHONPATH")])])
    env.setdefault("OMP_NUM_THREADS", "1")
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    return env


def check_import(work: Path, env: dict[str, str]) -> None:
    out = subprocess.run([sys.executable, "-c", "import evss; print(evss.__file__)"], cwd=work, env=env,
                         capture_output=True, text=True, check=True).stdout.strip()
    if not Path(out).resolve().is_relative_to((work / "src").resolve()):
        raise SystemExit(f"mutants: evss is imported from {out}, not from the copy in {work / 'src'}")


FAILED = re.compile(r"^(?:FAILED|ERROR) (\S+)", re.MULTILINE)


def run_tests(work: Path, env: dict[str, str], targets: list[str], timeout: float) -> tuple[bool, str]:
    """(passed, first failing test or a reason) for ``python -m pytest -x -q [targets]`` in the copy."""
    cmd = [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", *targets]
    try:
        proc = subprocess.run(cmd, cwd=work, env=env, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return False, f"timeout after {timeout:.0f} s"
    if proc.returncode == 0:
        return True, ""
    hit = FAILED.search(proc.stdout)
    if hit:
        return False, hit.group(1)
    tail = (proc.stdout + proc.stderr).strip().splitlines()[-3:]
    return False, f"pytest exit {proc.returncode}: {' | '.join(tail)}"


def apply(text: str, mutant: Mutant) -> str:
    for old, new in mutant.edits:
        count = text.count(old)
        if count != 1:
            raise ValueError(f"old text found {count} times: {old.strip()[:60]!r}")
        text = text.replace(old, new)
    return text


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-k", dest="select", default="", help="only mutants whose name contains this text")
    parser.add_argument("--list", action="store_true", help="list the mutants and exit")
    parser.add_argument("--full", action="store_true", help="always run the whole suite (skip the likely files)")
    parser.add_argument("--timeout", type=float, default=1800, help="seconds per pytest run (default 1800)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary copy")
    args = parser.parse_args(argv)
    mutants = [m for m in MUTANTS if args.select.lower() in m.name.lower()]
    if args.list:
        for m in mutants:
            print(f"{m.name}  [{m.file}; first: {', '.join(m.tests) or 'the suite'}]")
        return 0
    if not mutants:
        print(f"mutants: no mutant matches {args.select!r}", file=sys.stderr)
        return 2
    tmp = Path(tempfile.mkdtemp(prefix="evss-mutants-"))
    t_start = time.perf_counter()
    try:
        work = copy_project(tmp)
        env = environment(work)
        check_import(work, env)
        print(f"mutants: {len(mutants)} mutants, project copied to {work}", flush=True)
        likely = sorted({t for m in mutants for t in m.tests if (work / t).exists()})
        if likely and not args.full:
            ok, why = run_tests(work, env, likely, args.timeout)
            if not ok:
                print(f"mutants: the unmutated copy fails its tests ({why}); fix that first", file=sys.stderr)
                return 2
        rows = []
        for m in mutants:
            path = work / m.file
            pristine = path.read_text()
            t0 = time.perf_counter()
            try:
                path.write_text(apply(pristine, m))
            except ValueError as exc:
                rows.append((m.name, "does not apply", str(exc), 0.0))
                print(f"  {m.name}: does not apply ({exc})", flush=True)
                continue
            try:
                caught, by = False, ""
                first = [t for t in m.tests if (work / t).exists()]
                if first and not args.full:
                    ok, why = run_tests(work, env, first, args.timeout)
                    caught, by = not ok, why
                if not caught:
                    ok, why = run_tests(work, env, [], args.timeout)
                    caught, by = not ok, why
            finally:
                path.write_text(pristine)
            seconds = time.perf_counter() - t0
            rows.append((m.name, "caught" if caught else "SURVIVED", by, seconds))
            print(f"  {m.name}: {'caught by ' + by if caught else 'SURVIVED'} ({seconds:.0f} s)", flush=True)
    finally:
        if args.keep:
            print(f"mutants: kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    width = max(len(r[0]) for r in rows)
    print(f"\n{'mutant':<{width}}  {'result':<14}  {'seconds':>7}  caught by")
    for name, result, by, seconds in rows:
        print(f"{name:<{width}}  {result:<14}  {seconds:7.0f}  {by}")
    bad = [r for r in rows if r[1] != "caught"]
    print(f"\n{len(rows) - len(bad)} of {len(rows)} caught in {time.perf_counter() - t_start:.0f} s"
          + (f"; {len(bad)} not caught" if bad else ""))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
