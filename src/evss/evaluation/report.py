"""The report of an evaluation: report.json, report.md and the plots (Figs. 1, 8, 11, TC by place and a
Fig. 6/12-style panel)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from matplotlib.figure import Figure  # figures without pyplot: no global backend, nothing to close

from evss.classes import LABEL_SPACES
from evss.media.atomic import atomic_write
from evss.visualize import gray

PANEL_COLUMNS = ("frame", "coarse", "edge", "fine", "warped", "rectified", "gt")


def write_report(report: dict[str, Any], out: Path, *, label_space: str, costs: dict | None = None,
                 command: str = "", model_space: str | None = None) -> Path:
    """report.json, report.md and the plots (Figs. 1, 8, 11 and a Fig. 6/12-style panel) in ``out``;
    ``report`` (from :func:`evss.evaluation.evaluate`) loses its panels and gains the costs and the
    command. ``label_space``: the scored labels' (the data's); ``model_space``: the model's, when its
    predictions were collapsed to the data's classes by the label sets (said in both reports).
    Returns the path of report.md."""
    out.mkdir(parents=True, exist_ok=True)
    space = LABEL_SPACES[label_space]
    panels = report.pop("panels", [])
    if model_space is not None and model_space != label_space:
        report["collapsed"] = collapsed_note(model_space, label_space)
    if costs:
        report["component_costs"] = costs
    report["command"] = command
    atomic_write(out / "report.json", lambda p: p.write_text(json.dumps(report, indent=2)))
    by_pos = tc_by_position(report)
    _plot_miou(report, out)
    _plot_corrected_labels(report, out)
    _plot_accuracy_vs_time(report, out)
    if by_pos:  # where in the keyframe interval consistency is won or lost
        _plot_tc_by_position(by_pos, report["tc_interval"], out)
    if panels:
        _plot_panels(panels, space, out)
    lines = markdown(report, space=space, costs=costs, command=command, by_pos=by_pos, panels=bool(panels))
    atomic_write(out / "report.md", lambda p: p.write_text("\n".join(lines) + "\n"))
    return out / "report.md"


def collapsed_note(model_space: str, label_space: str) -> dict[str, Any]:
    """What report.json says of a model scored through label sets (``evss.label_sets.collapse_table``)."""
    model, data = LABEL_SPACES[model_space], LABEL_SPACES[label_space]
    return {"model_label_space": model_space, "model_classes": model.num_classes, "scored_label_space": label_space,
            "scored_classes": data.num_classes,
            "how": f"each pixel the {label_space} class whose set of {model_space} classes has the largest summed "
                   "softmax probability (evss.classes.CAMVID_AS_CITYSCAPES)"}


def tc_by_position(report: dict[str, Any]) -> dict[str, list[float | None]]:
    """Each method's TC by the pair's place in the keyframe interval; empty when no method has one."""
    by_pos = {name: m.get("tc_by_position") or [] for name, m in report["methods"].items()}
    return by_pos if any(v is not None for vals in by_pos.values() for v in vals) else {}


def _save(fig: Figure, path: Path) -> None:
    atomic_write(path, lambda p: fig.savefig(p, format="png", dpi=110, bbox_inches="tight"))


def _plot_miou(report: dict[str, Any], out: Path) -> None:
    intervals = report["intervals"]
    fig = Figure(figsize=(6, 4))
    ax = fig.subplots()
    for name, m in report["methods"].items():
        ax.plot(intervals, [100 * m["intervals"][str(d)]["miou"] for d in intervals], marker="o", label=name)
    ax.set(xlabel="keyframe interval", ylabel="mIoU (%)", title="Accuracy vs keyframe interval (Fig. 8)")
    ax.grid(alpha=0.3), ax.legend()
    _save(fig, out / "miou_vs_interval.png")


def _plot_corrected_labels(report: dict[str, Any], out: Path) -> None:
    intervals = report["intervals"]
    fig = Figure(figsize=(6, 4))
    ax = fig.subplots()
    for name, m in report["methods"].items():
        if m["mode"] == "evss":
            ax.plot(intervals, [100 * m["intervals"][str(d)]["corrected_labels"] for d in intervals], marker="o",
                    label=name)
    ax.set(xlabel="keyframe interval", ylabel="corrected labels (%)", title="Corrected labels, Eq. (9) (Fig. 11)")
    ax.grid(alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend()
    _save(fig, out / "corrected_labels.png")


def _plot_accuracy_vs_time(report: dict[str, Any], out: Path) -> None:
    intervals = report["intervals"]
    fig = Figure(figsize=(6, 4))
    ax = fig.subplots()
    for name, m in report["methods"].items():
        xs = [m["intervals"][str(d)]["ms_per_frame"] for d in intervals]
        ys = [100 * m["intervals"][str(d)]["miou"] for d in intervals]
        ax.plot(xs, ys, marker="o", label=name)
        for d, x, y in zip(intervals, xs, ys):
            if m["mode"] != "per_frame":
                ax.annotate(str(d), (x, y), fontsize=7)
    ax.set(xlabel="average ms per frame (keyframe to labelled frame)", ylabel="mIoU (%)",
           title="Accuracy vs time per frame (Fig. 1)")
    ax.grid(alpha=0.3), ax.legend()
    _save(fig, out / "accuracy_vs_time.png")


def _plot_tc_by_position(by_pos: dict[str, list[float | None]], n: int, out: Path) -> None:
    fig = Figure(figsize=(6, 4))
    ax = fig.subplots()
    for name, vals in by_pos.items():
        pts = [(p, 100 * v) for p, v in enumerate(vals) if v is not None]
        if pts:
            ax.plot(*zip(*pts), marker="o", label=name)
    ax.set(xlabel=f"t mod {n} of the pair (t - 1, t); 0: t is a keyframe",
           ylabel="TC (%)", title="Temporal consistency by place in the keyframe interval")
    ax.set_xticks(range(n))
    ax.grid(alpha=0.3), ax.legend()
    _save(fig, out / "tc_by_position.png")


def _plot_panels(panels: list[dict[str, Any]], space: Any, out: Path) -> None:
    """One row per sample: the frame, the distortion maps (grey) and the label maps (coloured)."""
    fig = Figure(figsize=(2.2 * len(PANEL_COLUMNS), 1.4 * len(panels) + 0.4))
    axes = fig.subplots(len(panels), len(PANEL_COLUMNS), squeeze=False)
    for row, p in zip(axes, panels):
        for ax, c in zip(row, PANEL_COLUMNS):
            img = p[c]
            if c in ("coarse", "edge", "fine"):
                img = gray(img)
            elif c != "frame":
                img = space.colorize(img)
            ax.imshow(img), ax.set_xticks([]), ax.set_yticks([])
            ax.set_title(c, fontsize=8)
        row[0].set_ylabel(p["title"].split(" frame")[0], fontsize=6)
    _save(fig, out / "panels.png")


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    """A markdown table: the first column left-aligned, the others right-aligned."""
    def line(cells: list[str]) -> str:
        return f"| {cells[0]} | " + " | ".join(cells[1:]) + " |"

    return [line(header), "|---|" + "---:|" * (len(header) - 1)] + [line(r) for r in rows]


def markdown(report: dict[str, Any], *, space: Any, costs: dict | None, command: str,
             by_pos: dict[str, list[float | None]], panels: bool) -> list[str]:
    """The lines of report.md."""
    lines = ["# Evaluation report", "", f"Command: `{command}`", "", _scope_line(report), ""]
    if "collapsed" in report:
        c = report["collapsed"]
        lines += [f"Collapsed: a {c['model_classes']}-class {c['model_label_space']} model scored on "
                  f"{c['scored_classes']}-class {c['scored_label_space']} labels, {c['how']}.", ""]
    lines += _miou_table(report)
    if by_pos:
        lines += _tc_by_position_table(by_pos, report["tc_interval"])
    lines += _interval_tables(report)
    lines += _per_class_table(report, space)
    if costs:
        lines += ["", "## Per-component cost (Fig. 9)", "", f"At {costs.get('size', '?')}:", ""]
        lines += _table(["part", "GFLOPs", "ms"], [[part, f"{c['gflops']:.2f}", f"{c['ms']:.1f}"]
                                                  for part, c in costs.items() if isinstance(c, dict)])
    lines += ["", "Plots: `miou_vs_interval.png`, `corrected_labels.png`, `accuracy_vs_time.png`"
              + (", `tc_by_position.png`" if by_pos else "") + (", `panels.png`" if panels else "") + "."]
    return lines


def _scope_line(report: dict[str, Any]) -> str:
    """What was scored: the sequences, target frames and TC run (single frames: per frame only)."""
    if report["target"] == "single":
        return (f"Frames: {report['num_sequences']} single frames, each its own keyframe: per frame only "
                "(interval 1 is `evss segment --keyframe-interval 1`; propagation, TC and corrected labels "
                "need video and do not apply)")
    return (f"Sequences: {report['num_sequences']}, target frames: {report['target']}, "
            f"TC: streaming at interval {report['tc_interval']}, flow: {report['tc_flow']}")


def _miou_table(report: dict[str, Any]) -> list[str]:
    intervals = report["intervals"]
    rows = []
    for name, m in report["methods"].items():
        tc = "n/a" if m["temporal_consistency"] is None else f"{100 * m['temporal_consistency']:.2f}"
        rows.append([name, *(f"{100 * m['intervals'][str(d)]['miou']:.2f}" for d in intervals), tc,
                     f"{m['ms_keyframe']:.1f}", f"{m['ms_non_keyframe']:.1f}"])
    return (["## mIoU (%) by keyframe interval", ""]
            + _table(["method", *(str(d) for d in intervals), "TC (%)", "ms key", "ms non-key"], rows))


def _tc_by_position_table(by_pos: dict[str, list[float | None]], n: int) -> list[str]:
    rows = [[name, *("-" if v is None else f"{100 * v:.2f}" for v in vals)] for name, vals in by_pos.items()]
    return (["", f"## TC (%) by the pair's place in the keyframe interval (t mod {n})", "",
             "Pairs (t - 1, t) pooled over clips; 0: t is a keyframe (for per-frame rows every frame "
             "is one and the columns only split the same run).", ""]
            + _table(["method", *(str(p) for p in range(n))], rows))


def _interval_tables(report: dict[str, Any]) -> list[str]:
    """Corrected labels (EVSS rows) and ms per frame, by keyframe interval."""
    intervals, methods = report["intervals"], report["methods"]
    header = ["method", *(str(d) for d in intervals)]
    corrected = [[name, *(f"{100 * m['intervals'][str(d)]['corrected_labels']:.2f}" for d in intervals)]
                 for name, m in methods.items() if m["mode"] == "evss"]
    ms = [[name, *(f"{m['intervals'][str(d)]['ms_per_frame']:.1f}" for d in intervals)]
          for name, m in methods.items()]
    corrected_lines = ["", "## Corrected labels (%), Eq. (9)", ""] + _table(header, corrected)
    if report["target"] == "single":  # per frame only: nothing is propagated, nothing corrected
        corrected_lines = []
    return corrected_lines + ["", "## Average ms per frame, keyframe to labelled frame", ""] + _table(header, ms)


def _per_class_table(report: dict[str, Any], space: Any) -> list[str]:
    d_last = str(report["intervals"][-1])
    rows = [[name, *("-" if v is None else f"{100 * v:.1f}" for v in m["intervals"][d_last]["per_class_iou"])]
            for name, m in report["methods"].items()]
    return ["", f"## Per-class IoU (%) at interval {d_last}", ""] + _table(["method", *space.names], rows)
