"""Charts of a memory plan: live bytes over time, and the arena layout."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from matplotlib.patches import Rectangle

from memfit.analysis.memory import MemoryAnalysis, live_bytes_per_step


def plot_memory(analysis: MemoryAnalysis, path: str | Path) -> None:
    """Write a two-panel figure: memory over time (memfit vs model order) and arena layout."""
    plan, baseline = analysis.plan, analysis.baseline
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(11, 8.5), constrained_layout=True)

    ours = live_bytes_per_step(plan)
    theirs = live_bytes_per_step(baseline)
    top.step(
        range(len(theirs)),
        [b / 1024 for b in theirs],
        where="mid",
        label="model order, no aliasing",
        color="0.6",
    )
    top.step(
        range(len(ours)),
        [b / 1024 for b in ours],
        where="mid",
        label=f"memfit schedule ({plan.schedule.method})",
        color="tab:blue",
    )
    top.axhline(
        analysis.tflm_greedy_bytes / 1024,
        color="tab:red",
        linestyle="--",
        label=f"TFLM greedy arena {analysis.tflm_greedy_bytes:,} B",
    )
    top.axhline(
        analysis.peak_bytes / 1024,
        color="tab:blue",
        linestyle="--",
        label=f"memfit arena {analysis.peak_bytes:,} B",
    )
    top.set(xlabel="step (op)", ylabel="live KiB", title=f"{analysis.model}: memory over time")
    top.legend(loc="upper right", fontsize=8)

    offsets = plan.assignment.offsets
    cmap = plt.get_cmap("tab20")
    for index, buffer in enumerate(plan.lifetimes.buffers):
        if buffer.size == 0:
            continue
        start = offsets[buffer.name] / 1024
        bottom.add_patch(
            Rectangle(
                (buffer.first - 0.45, start),
                buffer.last - buffer.first + 0.9,
                buffer.size / 1024,
                facecolor=cmap(index % 20),
                edgecolor="black",
                linewidth=0.4,
            )
        )
    bottom.set_xlim(-1, max(plan.lifetimes.steps, 1))
    bottom.set_ylim(0, max(analysis.peak_bytes, 1) / 1024 * 1.02)
    bottom.set(
        xlabel="step (op)",
        ylabel="arena offset (KiB)",
        title=f"arena layout: {analysis.peak_bytes:,} bytes "
        f"(lower bound {analysis.lower_bound_bytes:,})",
    )
    fig.savefig(path, dpi=110)
    plt.close(fig)
