"""The report of `evss eval`: report.json, report.md and the plots (Figs. 1, 8, 11 and a Fig. 6/12-style panel)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from matplotlib.figure import Figure  # figures without pyplot: no global backend, nothing to close

from evss.classes import LABEL_SPACES
from evss.media.atomic import atomic_write
from evss.visualize import gray


def write_report(report: dict[str, Any], out: Path, *, label_space: str, costs: dict | None = None,
                 command: str = "") -> Path:
    """report.json, report.md and the plots (Figs. 1, 8, 11 and a Fig. 6/12-style panel)."""
    out.mkdir(parents=True, exist_ok=True)
    space = LABEL_SPACES[label_space]
    panels = report.pop("panels", [])
    if costs:
        report["component_costs"] = costs
    report["command"] = command
    atomic_write(out / "report.json", lambda p: p.write_text(json.dumps(report, indent=2)))
    intervals = report["intervals"]
    methods = report["methods"]

    def save(fig, name):
        atomic_write(out / name, lambda p: fig.savefig(p, format="png", dpi=110, bbox_inches="tight"))

    fig = Figure(figsize=(6, 4))
    ax = fig.subplots()
    for name, m in methods.items():
        ax.plot(intervals, [100 * m["intervals"][str(d)]["miou"] for d in intervals], marker="o", label=name)
    ax.set(xlabel="keyframe interval", ylabel="mIoU (%)", title="Accuracy vs keyframe interval (Fig. 8)")
    ax.grid(alpha=0.3), ax.legend()
    save(fig, "miou_vs_interval.png")
    fig = Figure(figsize=(6, 4))
    ax = fig.subplots()
    for name, m in methods.items():
        if m["mode"] == "evss":
            ax.plot(intervals, [100 * m["intervals"][str(d)]["corrected_labels"] for d in intervals], marker="o", label=name)
    ax.set(xlabel="keyframe interval", ylabel="corrected labels (%)", title="Corrected labels, Eq. (9) (Fig. 11)")
    ax.grid(alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend()
    save(fig, "corrected_labels.png")
    fig = Figure(figsize=(6, 4))
    ax = fig.subplots()
    for name, m in methods.items():
        xs = [m["intervals"][str(d)]["ms_per_frame"] for d in intervals]
        ys = [100 * m["intervals"][str(d)]["miou"] for d in intervals]
        ax.plot(xs, ys, marker="o", label=name)
        for d, x, y in zip(intervals, xs, ys):
            if m["mode"] != "per_frame":
                ax.annotate(str(d), (x, y), fontsize=7)
    ax.set(xlabel="average ms per frame (keyframe to labelled frame)", ylabel="mIoU (%)",
           title="Accuracy vs time per frame (Fig. 1)")
    ax.grid(alpha=0.3), ax.legend()
    save(fig, "accuracy_vs_time.png")
    by_pos = {name: m.get("tc_by_position") or [] for name, m in methods.items()}
    has_tc_pos = any(v is not None for vals in by_pos.values() for v in vals)
    if has_tc_pos:  # where in the keyframe interval consistency is won or lost
        fig = Figure(figsize=(6, 4))
        ax = fig.subplots()
        for name, vals in by_pos.items():
            pts = [(p, 100 * v) for p, v in enumerate(vals) if v is not None]
            if pts:
                ax.plot(*zip(*pts), marker="o", label=name)
        ax.set(xlabel=f"t mod {report['tc_interval']} of the pair (t - 1, t); 0: t is a keyframe",
               ylabel="TC (%)", title="Temporal consistency by place in the keyframe interval")
        ax.set_xticks(range(report["tc_interval"]))
        ax.grid(alpha=0.3), ax.legend()
        save(fig, "tc_by_position.png")
    if panels:
        cols = ["frame", "coarse", "edge", "fine", "warped", "rectified", "gt"]
        fig = Figure(figsize=(2.2 * len(cols), 1.4 * len(panels) + 0.4))
        axes = fig.subplots(len(panels), len(cols), squeeze=False)
        for row, p in zip(axes, panels):
            for ax, c in zip(row, cols):
                img = p[c]
                if c in ("coarse", "edge", "fine"):
                    img = gray(img)
                elif c != "frame":
                    img = space.colorize(img)
                ax.imshow(img), ax.set_xticks([]), ax.set_yticks([])
                ax.set_title(c, fontsize=8)
            row[0].set_ylabel(p["title"].split(" frame")[0], fontsize=6)
        save(fig, "panels.png")

    lines = ["# Evaluation report", "", f"Command: `{command}`", "",
             f"Sequences: {report['num_sequences']}, target frames: {report['target']}, "
             f"TC: streaming at interval {report['tc_interval']}, flow: {report['tc_flow']}", "",
             "## mIoU (%) by keyframe interval", "",
             "| method | " + " | ".join(str(d) for d in intervals) + " | TC (%) | ms key | ms non-key |",
             "|---|" + "---:|" * (len(intervals) + 3)]
    for name, m in methods.items():
        tc = "n/a" if m["temporal_consistency"] is None else f"{100 * m['temporal_consistency']:.2f}"
        lines.append(f"| {name} | " + " | ".join(f"{100 * m['intervals'][str(d)]['miou']:.2f}" for d in intervals)
                     + f" | {tc} | {m['ms_keyframe']:.1f} | {m['ms_non_keyframe']:.1f} |")
    n = report["tc_interval"]
    if has_tc_pos:
        lines += ["", f"## TC (%) by the pair's place in the keyframe interval (t mod {n})", "",
                  "Pairs (t - 1, t) pooled over clips; 0: t is a keyframe (for per-frame rows every frame "
                  "is one and the columns only split the same run).", "",
                  "| method | " + " | ".join(str(p) for p in range(n)) + " |", "|---|" + "---:|" * n]
        for name, vals in by_pos.items():
            lines.append(f"| {name} | " + " | ".join("-" if v is None else f"{100 * v:.2f}" for v in vals) + " |")
    lines += ["", "## Corrected labels (%), Eq. (9)", "",
              "| method | " + " | ".join(str(d) for d in intervals) + " |", "|---|" + "---:|" * len(intervals)]
    for name, m in methods.items():
        if m["mode"] == "evss":
            lines.append(f"| {name} | " + " | ".join(f"{100 * m['intervals'][str(d)]['corrected_labels']:.2f}"
                                                    for d in intervals) + " |")
    lines += ["", "## Average ms per frame, keyframe to labelled frame", "",
              "| method | " + " | ".join(str(d) for d in intervals) + " |", "|---|" + "---:|" * len(intervals)]
    for name, m in methods.items():
        lines.append(f"| {name} | " + " | ".join(f"{m['intervals'][str(d)]['ms_per_frame']:.1f}" for d in intervals) + " |")
    d_last = str(intervals[-1])
    lines += ["", f"## Per-class IoU (%) at interval {d_last}", "",
              "| method | " + " | ".join(space.names) + " |", "|---|" + "---:|" * space.num_classes]
    for name, m in methods.items():
        vals = m["intervals"][d_last]["per_class_iou"]
        lines.append(f"| {name} | " + " | ".join("-" if v is None else f"{100 * v:.1f}" for v in vals) + " |")
    if costs:
        lines += ["", "## Per-component cost (Fig. 9)", "", f"At {costs.get('size', '?')}:", "",
                  "| part | GFLOPs | ms |", "|---|---:|---:|"]
        for part, c in costs.items():
            if isinstance(c, dict):
                lines.append(f"| {part} | {c['gflops']:.2f} | {c['ms']:.1f} |")
    lines += ["", "Plots: `miou_vs_interval.png`, `corrected_labels.png`, `accuracy_vs_time.png`"
              + (", `tc_by_position.png`" if has_tc_pos else "") + (", `panels.png`" if panels else "") + "."]
    atomic_write(out / "report.md", lambda p: p.write_text("\n".join(lines) + "\n"))
    return out / "report.md"
