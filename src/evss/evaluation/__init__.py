"""The evaluation protocol of the paper (Sec. IV-B) as a library: what `evss eval` runs.

    from evss.evaluation import EvalData, Method, eval_source, evaluate, write_report

    data = eval_source(EvalData("synthdrive", clips=2, frames=12, size=(128, 256)))
    rows = [Method(mode, model, mode) for mode in ("per_frame", "warp_only", "evss")]
    report = evaluate(rows, data.source, num_classes=11, intervals=(1, 5), tc_flow=data.gt_flow, tc_flow_name="gt")
    write_report(report, Path("eval-report"), label_space=data.label_space)

Modules: :mod:`~evss.evaluation.data` (the data and the flow TC warps with),
:mod:`~evss.evaluation.protocol` (``evaluate``, ``Method``, the memory plan),
:mod:`~evss.evaluation.variants` (the rows: variants, compared models, the weights' own flow),
:mod:`~evss.evaluation.costs` (Fig. 9's per-component cost), :mod:`~evss.evaluation.report`.
Temporal consistency (Eq. 8) is :class:`evss.metrics.TemporalConsistency`.
"""

from evss.evaluation.costs import component_costs
from evss.evaluation.data import (
    DATA_KINDS,
    TC_FLOWS,
    EvalData,
    EvalSource,
    FlowLookup,
    estimated_flow,
    eval_source,
    model_frame,
    motion_fields,
    tc_flow_for,
)
from evss.evaluation.protocol import DEFAULT_INTERVALS, METHODS, TARGETS, Method, eval_memory_plan, evaluate
from evss.evaluation.report import write_report
from evss.evaluation.variants import method_rows, trained_flow, variant

__all__ = [
    "DATA_KINDS", "DEFAULT_INTERVALS", "METHODS", "TARGETS", "TC_FLOWS", "EvalData", "EvalSource", "FlowLookup",
    "Method", "component_costs", "estimated_flow", "eval_memory_plan", "eval_source", "evaluate", "method_rows",
    "model_frame", "motion_fields", "tc_flow_for", "trained_flow", "variant", "write_report",
]
