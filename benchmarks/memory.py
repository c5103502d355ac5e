"""Arena bytes: TFLite Micro (measured live) vs memfit's plan, on every shared model and the
ONNX light zoo.

    .venv/bin/python -m benchmarks.memory [--only SUBSTRING]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from rich.progress import Progress

from benchmarks.common import markdown_table, onnx_light_models, publish, shared_models
from memfit.analysis.memory import analyze_memory
from memfit.frontends import load_model
from memfit.reference import tflm_arena_bytes


def measure(path: Path) -> list[str]:
    tflm = tflm_arena_bytes(path) if path.suffix == ".tflite" else None
    start = time.perf_counter()
    graph = load_model(path)
    load_seconds = time.perf_counter() - start
    as_imported = load_model(path, canonical=False) if path.suffix == ".tflite" else None
    analysis = analyze_memory(graph, as_imported=as_imported)
    head = tflm[0] if tflm else None
    ours = analysis.peak_bytes
    bound = analysis.model_order_lower_bound_bytes
    vs_bound = "below" if ours < bound else ("=" if ours == bound else "above")
    return [
        path.stem,
        f"{head:,}" if head else ("fails to load" if path.suffix == ".tflite" else "n/a (ONNX)"),
        f"{analysis.tflm_greedy_bytes:,}",
        f"{bound:,}",
        f"{analysis.lower_bound_bytes:,}",
        f"{ours:,}",
        f"{head / ours:.2f}x" if head else "-",
        vs_bound,
        analysis.plan.schedule.method,
        f"{analysis.planner_seconds:.2f}",
        f"{load_seconds + analysis.planner_seconds:.2f}",
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--only", help="run only models whose name contains this")
    args = parser.parse_args()
    models = shared_models() + onnx_light_models()
    if args.only:
        models = [m for m in models if args.only in m.stem]
    rows = []
    with Progress(transient=True) as progress:
        task = progress.add_task("planning", total=len(models))
        for path in models:
            progress.update(task, description=path.stem)
            rows.append(measure(path))
            progress.advance(task)
    header = [
        "model",
        "TFLM head (live)",
        "TFLM's method (memfit's model)",
        "lower bound, model order",
        "lower bound, memfit schedule",
        "memfit arena",
        "TFLM head / memfit",
        "memfit vs model-order bound",
        "schedule",
        "planner s",
        "load + plan s",
    ]
    table = markdown_table(header, rows)
    print(table)
    if not args.only:
        publish("memory", table)


if __name__ == "__main__":
    main()
