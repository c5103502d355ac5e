"""``memfit report``: one self-contained HTML page about a model and its plan.

The page works offline: its charts are SVG drawn by matplotlib and embedded inline, its style
is inline, and it loads nothing. It shows

- memory over time before (memfit's untiled plan) and after (the plan), with TFLite Micro's
  method for reference;
- the arena layout of the plan (each buffer a rectangle: step span x byte range);
- the memory/latency front: the plans ``memfit.optimizer.choose`` returns for a sweep of
  budgets, peak bytes against predicted latency;
- a table of every decision the plan makes (each tiled chain with its method, grid or
  partitions, and the peak and predicted latency once it is applied; the ops run in place),
  so a reader sees what each one bought and cost.
"""

from __future__ import annotations

import html
import io
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from matplotlib.patches import Rectangle

from memfit.analysis.memory import live_bytes_per_step
from memfit.codegen.cost_model import CostModel
from memfit.ir.core import Graph
from memfit.planning import MemoryPlan
from memfit.tiling import describe_size


@dataclass(frozen=True)
class Step:
    """The plan after one more decision: what it is, the peak and the predicted latency."""

    decision: str
    peak_bytes: int
    predicted_latency_s: float


@dataclass(frozen=True)
class FrontPoint:
    budget: int | None
    source: str
    peak_bytes: int
    predicted_latency_s: float


@dataclass(frozen=True)
class ReportData:
    model: str
    untiled: tuple[Graph, MemoryPlan]
    planned: tuple[Graph, MemoryPlan]
    tflm_greedy: MemoryPlan
    rewrites: Sequence[dict[str, Any]]
    steps: Sequence[Step]
    front: Sequence[FrontPoint]
    cost_model: CostModel
    notes: Sequence[str] = ()


def _svg(fig: Any) -> str:
    buffer = io.StringIO()
    fig.savefig(buffer, format="svg")
    plt.close(fig)
    text = buffer.getvalue()
    return text[text.index("<svg") :]  # drop the XML prologue: the SVG sits inside HTML


def memory_chart(data: ReportData) -> str:
    fig, ax = plt.subplots(figsize=(10, 3.6), constrained_layout=True)
    for label, plan, color in (
        ("TFLite Micro's method (model order, no sharing)", data.tflm_greedy, "0.6"),
        ("memfit, untiled", data.untiled[1], "tab:orange"),
        ("memfit, this plan", data.planned[1], "tab:blue"),
    ):
        live = live_bytes_per_step(plan)
        steps = len(live)
        # Plans differ in step count (tiles are ops): spread each over the same axis.
        xs = [i / max(steps - 1, 1) for i in range(steps)]
        ax.step(xs, [b / 1024 for b in live], where="mid", color=color, label=label)
        ax.axhline(plan.arena.size / 1024, color=color, linestyle="--", linewidth=0.8)
    ax.set(xlabel="progress through the model", ylabel="live KiB", title="memory over time")
    ax.legend(fontsize=8, loc="upper right")
    return _svg(fig)


def layout_chart(plan: MemoryPlan) -> str:
    fig, ax = plt.subplots(figsize=(10, 4.2), constrained_layout=True)
    cmap = plt.get_cmap("tab20")
    offsets = plan.assignment.offsets
    for index, buffer in enumerate(plan.lifetimes.buffers):
        if buffer.size == 0:
            continue
        ax.add_patch(
            Rectangle(
                (buffer.first - 0.45, offsets[buffer.name] / 1024),
                buffer.last - buffer.first + 0.9,
                buffer.size / 1024,
                facecolor=cmap(index % 20),
                edgecolor="black",
                linewidth=0.3,
            )
        )
    ax.set_xlim(-1, max(plan.lifetimes.steps, 1))
    ax.set_ylim(0, max(plan.arena.size, 1) / 1024 * 1.02)
    ax.set(
        xlabel="step (op)",
        ylabel="arena offset (KiB)",
        title=f"arena layout: {plan.arena.size:,} bytes (lower bound {plan.lower_bound:,})",
    )
    return _svg(fig)


def front_chart(data: ReportData) -> str:
    fig, ax = plt.subplots(figsize=(7, 4), constrained_layout=True)
    sources = sorted({p.source for p in data.front})
    markers = dict(zip(sources, "osD^v<>", strict=False))
    for source in sources:
        points = [p for p in data.front if p.source == source]
        ax.scatter(
            [p.peak_bytes / 1024 for p in points],
            [p.predicted_latency_s * 1e3 for p in points],
            marker=markers[source],
            label=source,
        )
    chosen = data.planned[1].arena.size / 1024
    ax.axvline(chosen, color="tab:blue", linestyle=":", label="this plan's peak")
    ax.set(
        xlabel="peak KiB (arena, workspace included)",
        ylabel="predicted latency (ms)",
        title="memory / latency front",
    )
    ax.legend(fontsize=8)
    return _svg(fig)


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in row) + "</tr>" for row in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def measured_delta(rewrites: Sequence[dict[str, Any]]) -> float:
    """Seconds the rewrites change beyond what the cost model sees: a primitive selection's
    measured difference from memfit's own kernels."""
    return sum(float(r.get("predicted_delta_s", 0.0)) for r in rewrites)


def _describe(record: dict[str, Any]) -> str:
    ops = record["ops"]
    size = describe_size(record)
    if record["method"] == "ffmt":
        size = "grid " + size
    by = f" ({record['by']})" if record.get("by") else ""
    if record["method"] == "primitives":
        return f"primitives {size}: {ops[0]} .. {ops[-1]} ({len(ops)} convolutions)"
    return f"{record['method'].upper()}{by} {size}: {ops[0]} .. {ops[-1]} ({len(ops)} ops)"


_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 72em; color: #222; }
h1 { font-size: 1.5em; } h2 { font-size: 1.15em; margin-top: 2em; }
table { border-collapse: collapse; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: right; }
th:first-child, td:first-child { text-align: left; }
.figure svg { max-width: 100%; height: auto; }
.summary td:first-child { font-weight: 600; }
"""


def render(data: ReportData) -> str:
    untiled_plan, plan = data.untiled[1], data.planned[1]
    untiled_latency = data.cost_model.predict(*data.untiled)
    latency = data.cost_model.predict(*data.planned) + measured_delta(data.rewrites)
    summary = _table(
        ["", "bytes", "predicted latency"],
        [
            ["TFLite Micro's method", f"{data.tflm_greedy.arena.size:,}", ""],
            ["memfit, untiled", f"{untiled_plan.arena.size:,}", f"{untiled_latency * 1e3:.3f} ms"],
            ["memfit, this plan", f"{plan.arena.size:,}", f"{latency * 1e3:.3f} ms"],
        ],
    )
    steps = _table(
        ["decision", "peak bytes", "predicted latency", "peak change", "latency change"],
        [
            [
                s.decision,
                f"{s.peak_bytes:,}",
                f"{s.predicted_latency_s * 1e3:.3f} ms",
                f"{s.peak_bytes / untiled_plan.arena.size - 1:+.1%}",
                f"{s.predicted_latency_s / untiled_latency - 1:+.1%}" if untiled_latency else "",
            ]
            for s in data.steps
        ],
    )
    in_place = _table(
        ["op", "runs in place as", "over input"],
        [
            [name, entry.kind, ", ".join(map(str, entry.inputs))]
            for name, entry in sorted(plan.storage.in_place.items())
        ],
    )
    front = _table(
        ["budget", "chosen", "peak bytes", "predicted latency"],
        [
            [
                f"{p.budget:,}" if p.budget else "none",
                p.source,
                f"{p.peak_bytes:,}",
                f"{p.predicted_latency_s * 1e3:.3f} ms",
            ]
            for p in data.front
        ],
    )
    notes = "".join(f"<li>{html.escape(n)}</li>" for n in data.notes)
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<title>memfit report: {html.escape(data.model)}</title>
<style>{_STYLE}</style></head>
<body>
<h1>memfit report: {html.escape(data.model)}</h1>
<div class="summary">{summary}</div>
<ul>{notes}</ul>
<h2>Memory over time, before and after</h2>
<div class="figure" id="memory">{memory_chart(data)}</div>
<h2>Arena layout of this plan</h2>
<div class="figure" id="layout">{layout_chart(plan)}</div>
<h2>Memory / latency front</h2>
<div class="figure" id="front">{front_chart(data)}</div>
{front}
<h2>Decisions</h2>
<p>Each row applies one more decision of the plan, in order.</p>
{steps}
<h2>Ops that run in place</h2>
{in_place}
</body></html>
"""


def collect(
    graph: Graph,
    untiled: tuple[Graph, MemoryPlan],
    planned: tuple[Graph, MemoryPlan],
    rewrites: Sequence[dict[str, Any]],
    tflm_greedy: MemoryPlan,
    cost_model: CostModel,
    front: Sequence[FrontPoint],
    notes: Sequence[str] = (),
) -> ReportData:
    """Everything the page shows; ``graph`` is the untiled canonical model."""
    from memfit.planning import plan_memory
    from memfit.tiling import apply_rewrites

    untiled_graph = graph.copy()
    untiled_plan = plan_memory(untiled_graph)
    steps = [
        Step("untiled", untiled_plan.arena.size, cost_model.predict(untiled_graph, untiled_plan))
    ]
    for index, record in enumerate(rewrites):
        if index == len(rewrites) - 1:
            step_graph, step_plan = planned
        else:
            step_graph = apply_rewrites(graph.copy(), rewrites[: index + 1])
            step_plan = plan_memory(step_graph, reorder=False, exact_time_limit=0)
        steps.append(
            Step(
                _describe(record),
                step_plan.arena.size,
                cost_model.predict(step_graph, step_plan) + measured_delta(rewrites[: index + 1]),
            )
        )
    return ReportData(
        model=graph.name,
        untiled=untiled,
        planned=planned,
        tflm_greedy=tflm_greedy,
        rewrites=rewrites,
        steps=steps,
        front=front,
        cost_model=cost_model,
        notes=notes,
    )
