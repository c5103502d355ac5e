"""MAFAT and the one optimizer: YOLOv2-16's latency/budget curve, search vs exhaustive, the
memory predictor against the planner, and every shared model at half of TFLite Micro's head.

    .venv/bin/python -m benchmarks.mafat [--quick]

Latencies are medians of the generated C (``memfit.codegen.bench.bench_plans``), every plan of
a table timed in the same rounds as the untiled plan, so ratios come from the same moments of
this shared machine. ``--quick`` skips the measured latencies (compiling YOLOv2-16 takes a
while) and prints the tables without publishing them.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

from rich.console import Console

from benchmarks.common import markdown_table, publish, shared_models
from memfit.codegen.bench import bench_plans
from memfit.codegen.cost_model import default_cost_model
from memfit.codegen.plan import kernel_workspace
from memfit.errors import MemfitError
from memfit.frontends import load_model
from memfit.ir.core import Graph
from memfit.optimizer import choose
from memfit.planning import MemoryPlan
from memfit.reference import tflm_arena_bytes
from memfit.tiling import mafat

YOLO = "zoo:yolov2-16"
FRACTIONS = (1 / 2, 1 / 3, 1 / 4, 1 / 6, 1 / 8, 1 / 12, 1 / 16, 1 / 24, 1 / 32)
RUNS = 3
console = Console(stderr=True)


def _untiled(run: mafat.Run) -> tuple[Graph, MemoryPlan]:
    return mafat.real_plan(run, run.untiled)


def yolo_curve(run: mafat.Run, measure: bool) -> str:
    """From the untiled peak down to the smallest budget the search can meet."""
    untiled = run.score(run.untiled)
    points: list[tuple[str, mafat.Score, float]] = [("untiled", untiled, 0.0)]
    for fraction in FRACTIONS:
        budget = int(untiled.memory * fraction)
        start = time.perf_counter()
        found = mafat.search(run, budget)
        seconds = time.perf_counter() - start
        if found.best is None:
            smallest = found.smallest
            points.append((f"1/{round(1 / fraction)}: none fits", smallest, seconds))
            break
        points.append((f"1/{round(1 / fraction)} ({budget:,})", found.best, seconds))
    plans = [mafat.real_plan(run, score.configuration) for _, score, _ in points]
    latencies: list[float | None] = [None] * len(points)
    if measure:
        console.print(f"timing {len(plans)} YOLOv2-16 plans side by side")
        timed = bench_plans(plans, YOLO, "yolov2_16", runs=RUNS)
        latencies = [b.latency_s for b in timed]
    rows = []
    base = latencies[0]
    for (label, score, seconds), (_, plan), latency in zip(points, plans, latencies, strict=True):
        rows.append(
            [
                label,
                score.configuration.describe(run).replace("|", "/"),
                f"{plan.arena.size:,}",
                f"{untiled.memory / plan.arena.size:.2f}x",
                f"{score.memory / plan.arena.size:.3f}",
                f"{score.latency / untiled.latency:.3f}",
                f"{latency * 1e3:.0f}" if latency else "-",
                f"{latency / base:.3f}" if latency and base else "-",
                f"{seconds:.2f}",
            ]
        )
    header = [
        "budget (fraction of untiled)",
        "configuration (groups, grid)",
        "planned peak",
        "untiled / peak",
        "predicted / planned peak",
        "predicted latency / untiled",
        "measured ms",
        "measured / untiled",
        "search s",
    ]
    return markdown_table(header, rows)


def search_vs_exhaustive(run: mafat.Run, measure: bool) -> str:
    untiled = run.score(run.untiled)
    rows = []
    for fraction in (1 / 2, 1 / 4, 1 / 8):
        budget = int(untiled.memory * fraction)
        start = time.perf_counter()
        found = mafat.search(run, budget)
        search_s = time.perf_counter() - start
        start = time.perf_counter()
        best = mafat.exhaustive(run, budget, max_groups=3)
        exhaustive_s = time.perf_counter() - start
        if found.best is None or best.best is None:
            rows.append([f"1/{round(1 / fraction)}", "no fit", "", "", "", "", "", ""])
            continue
        measured = "-"
        if measure:
            plans = [
                mafat.real_plan(run, found.best.configuration),
                mafat.real_plan(run, best.best.configuration),
            ]
            timed = bench_plans(plans, YOLO, "yolov2_16", runs=RUNS)
            measured = f"{timed[0].latency_s / timed[1].latency_s:.3f}"
        rows.append(
            [
                f"1/{round(1 / fraction)} ({budget:,})",
                found.best.configuration.describe(run).replace("|", "/"),
                best.best.configuration.describe(run).replace("|", "/"),
                f"{found.best.latency / best.best.latency:.3f}",
                measured,
                f"{len(found.visited):,} / {len(best.visited):,}",
                f"{search_s:.2f}",
                f"{exhaustive_s:.1f}",
            ]
        )
    header = [
        "budget",
        "search's choice",
        "exhaustive's choice (<= 3 groups)",
        "predicted latency, search / exhaustive",
        "measured latency, search / exhaustive",
        "configurations scored (search / exhaustive)",
        "search s",
        "exhaustive s",
    ]
    return markdown_table(header, rows)


def predictor_errors(models: list[str | Path], sample: int = 60) -> str:
    """Predicted / planned peak over the configurations the search visits (a sample of them),
    at budgets from the untiled peak down."""
    rows = []
    for model in models:
        graph = load_model(model)
        layers = mafat.find_run(graph)
        if len(layers) < 2:
            continue
        run = mafat.Run(graph, layers, default_cost_model())
        untiled = run.score(run.untiled).memory
        seen: dict[mafat.Configuration, int] = {}
        for fraction in (None, 0.5, 0.3, 0.2, 0.1, 0.05):
            budget = None if fraction is None else int(untiled * fraction)
            for score in mafat.search(run, budget).visited:
                seen.setdefault(score.configuration, score.memory)
        configurations = list(seen.items())
        step = max(1, len(configurations) // sample)
        ratios = []
        for config, predicted in configurations[::step]:
            _, plan = mafat.real_plan(run, config)
            ratios.append(predicted / plan.arena.size)
        under = sum(1 for r in ratios if r < 1)
        over = sum(1 for r in ratios if r > 1.10)
        name = model.stem if isinstance(model, Path) else model
        rows.append(
            [
                name,
                str(len(layers)),
                f"{len(configurations):,}",
                str(len(ratios)),
                f"{min(ratios):.3f}",
                f"{statistics.median(ratios):.3f}",
                f"{max(ratios):.3f}",
                str(under),
                str(over),
            ]
        )
    header = [
        "model",
        "layers in the run",
        "configurations visited",
        "checked",
        "min predicted / planned",
        "median",
        "max",
        "under (< 1)",
        "over 10%",
    ]
    return markdown_table(header, rows)


def half_of_tflm(measure: bool) -> str:
    """Every shared model TFLite Micro runs, with the budget at half of its arena head."""
    rows = []
    for path in shared_models():
        head = tflm_arena_bytes(path)
        if head is None:
            continue
        budget = head[0] // 2
        graph = load_model(path)
        start = time.perf_counter()
        decision = choose(graph, budget=budget)
        seconds = time.perf_counter() - start
        chosen = decision.chosen
        ratio = "-"
        if measure and decision.fits_budget:
            plans = [
                (decision.untiled.graph, decision.untiled.plan),
                (chosen.graph, chosen.plan),
            ]
            try:
                untiled, tiled = bench_plans(plans, str(path), path.stem, runs=5)
                ratio = f"{tiled.latency_s / untiled.latency_s:.3f}"
            except MemfitError as exc:  # e.g. an op without a C kernel
                ratio = "no C: " + str(exc).split(";")[0].split(": ")[-1]
        rows.append(
            [
                path.stem,
                f"{head[0]:,}",
                f"{budget:,}",
                f"{chosen.peak_bytes:,}",
                "yes" if decision.fits_budget else "no",
                chosen.source,
                f"{decision.mac_overhead:.1%}",
                ratio,
                f"{seconds:.1f}",
            ]
        )
    header = [
        "model",
        "TFLM head",
        "budget (half)",
        "memfit peak",
        "fits",
        "chosen",
        "MAC overhead",
        "measured latency / untiled",
        "optimize s",
    ]
    return markdown_table(header, rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="no measured latencies")
    args = parser.parse_args()
    measure = not args.quick
    with kernel_workspace():
        graph = load_model(YOLO)
        run = mafat.Run(graph, mafat.find_run(graph), default_cost_model())
        start = time.perf_counter()
        decision = choose(graph, budget=run.score(run.untiled).memory // 2)
        yolo_seconds = time.perf_counter() - start
        console.print("YOLOv2-16: latency/budget curve")
        curve = yolo_curve(run, measure)
        console.print("YOLOv2-16: search vs exhaustive")
        versus = search_vs_exhaustive(run, measure)
        console.print("predictor vs planner")
        errors = predictor_errors([YOLO, "zoo:yolov2-16-int8", *shared_models()])
        console.print("shared models at half of TFLite Micro's head")
        half = half_of_tflm(measure)
    model = default_cost_model()
    calibrated = model.provenance.get("calibrated", True)
    text = (
        "YOLOv2-16 (608x608, float32), MAFAT's search at falling budgets"
        f" ({'calibrated' if calibrated else 'uncalibrated'} cost model; `memfit optimize "
        f"zoo:yolov2-16 --budget {run.score(run.untiled).memory // 2}` took {yolo_seconds:.0f} s"
        f" and chose {decision.chosen.source}):\n\n"
        + curve
        + "\nSearch vs exhaustive search over at most 3 groups (grids from "
        + ", ".join(f"{r}x{c}" for r, c in mafat.GRIDS)
        + "):\n\n"
        + versus
        + "\nThe memory predictor against the real planner:\n\n"
        + errors
        + "\nThe one optimizer (`memfit optimize --budget`) on the shared models, budget = half "
        "of TFLite Micro's arena head:\n\n" + half
    )
    print(text)
    if measure:
        publish("mafat", text)


if __name__ == "__main__":
    main()
