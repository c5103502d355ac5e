"""Tiled peak memory: ``memfit optimize`` (FDT and FFMT with path discovery) on every shared
model and the built-in zoo, beside TFLite Micro's arena head (measured live; for the zoo, which
has no .tflite file, TFLite Micro's method: greedy by size in model order, no sharing) and
memfit's untiled plan.

    .venv/bin/python -m benchmarks.tiling [--only SUBSTRING]

For each model: the lowest peak with at most ``MAX_OVERHEAD`` recomputed MACs, and the lowest
with none (zero-overhead plans, FDT and FFMT rewrites that recompute nothing). Every plan is
proven by running the tiled graph inside its planned arena (NumPy executor) on a seeded input
and comparing with the untiled model: int8 bit for bit, float32 within 1e-5 relative. Arenas
include the generated C kernels' workspace, as ``memfit optimize`` plans them.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
from rich.progress import Progress

from benchmarks.common import geomean, markdown_table, publish, shared_models
from memfit.api import run
from memfit.codegen.boundary import ports
from memfit.codegen.plan import kernel_workspace
from memfit.codegen.verify import random_inputs
from memfit.frontends import load_model
from memfit.ir.core import Graph
from memfit.planning import tflm_greedy
from memfit.reference import tflm_arena_bytes
from memfit.tiling.discovery import OptimizeResult, optimize

MAX_OVERHEAD = 0.2


def _same_outputs(untiled: Graph, result: OptimizeResult) -> bool:
    """The tiled graph, run in its planned arena, against the untiled graph."""
    ins, _ = ports(untiled)
    inputs = {p.tensor.name: a for p, a in zip(ins, random_inputs(ins, seed=0), strict=True)}
    expected = run(untiled, inputs, "separate")
    got = run(result.graph, inputs, result.plan.arena)
    for name, want in expected.items():
        have = got[name]
        if np.issubdtype(want.dtype, np.integer):
            if not np.array_equal(have, want):
                return False
        elif not np.allclose(have, want, rtol=0, atol=1e-5 * max(np.abs(want).max(), 1e-30)):
            return False
    return True


def _plan(path: Path | str, max_overhead: float | None) -> tuple[OptimizeResult, float]:
    graph = load_model(path)
    start = time.perf_counter()
    with kernel_workspace():
        result = optimize(graph, max_mac_overhead=max_overhead)
    return result, time.perf_counter() - start


def _chains(result: OptimizeResult) -> str:
    parts = []
    for r in result.rewrites:
        size = f"P={r['partitions']}" if r["method"] == "fdt" else "x".join(map(str, r["grid"]))
        parts.append(f"{r['method'].upper()} {size} ({len(r['ops'])} ops)")
    return ", ".join(parts) or "none"


ZOO = (
    "ds-cnn",
    "ds-cnn-int8",
    "resnet8",
    "resnet8-int8",
    "mobilenetv2-0.35-96",
    "mobilenetv2-0.35-96-int8",
    "mobilenetv2",
    "mobilenetv2-int8",
    "yolov2-16",
    "yolov2-16-int8",
)


def measure(path: Path | str) -> dict[str, object]:
    if isinstance(path, Path):
        head = tflm_arena_bytes(path)
        tflm, live = (head[0] if head else None), True
    else:
        tflm, live = tflm_greedy(load_model(path)).arena.size, False
    bounded, seconds = _plan(path, MAX_OVERHEAD)
    zero, zero_seconds = _plan(path, 0.0)
    lowest, _ = _plan(path, None)
    untiled = load_model(path)
    verified = all(_same_outputs(untiled, r) for r in (bounded, zero, lowest))
    return {
        "model": path.stem if isinstance(path, Path) else path,
        "tflm": tflm,
        "live": live,
        "untiled": bounded.untiled_peak_bytes,
        "bounded": bounded,
        "zero": zero,
        "lowest": lowest,
        "seconds": max(seconds, zero_seconds),
        "verified": verified,
    }


def _ratio(tflm: int | None, ours: int) -> str:
    return f"{tflm / ours:.2f}x" if tflm else "-"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--only", help="run only models whose name contains this")
    args = parser.parse_args()
    models: list[Path | str] = [*shared_models(), *(f"zoo:{name}" for name in ZOO)]
    if args.only:
        models = [m for m in models if args.only in str(m)]
    results = []
    with Progress(transient=True) as progress:
        task = progress.add_task("optimizing", total=len(models))
        for path in models:
            progress.update(task, description=str(path))
            results.append(measure(path))
            progress.advance(task)
    rows = []
    for r in results:
        bounded, zero, tflm = r["bounded"], r["zero"], r["tflm"]
        assert isinstance(bounded, OptimizeResult) and isinstance(zero, OptimizeResult)
        assert tflm is None or isinstance(tflm, int)
        rows.append(
            [
                str(r["model"]),
                (f"{tflm:,}" if r["live"] else f"({tflm:,})") if tflm else "fails to load",
                f"{r['untiled']:,}",
                f"{bounded.peak_bytes:,}",
                _ratio(tflm, bounded.peak_bytes),
                f"{bounded.mac_overhead:.1%}",
                _chains(bounded),
                f"{zero.peak_bytes:,}",
                _ratio(tflm, zero.peak_bytes),
                _chains(zero),
                f"{r['lowest'].peak_bytes:,}",  # type: ignore[union-attr]
                _ratio(tflm, r["lowest"].peak_bytes),  # type: ignore[union-attr]
                f"{r['lowest'].mac_overhead:.1%}",  # type: ignore[union-attr]
                "yes" if r["verified"] else "NO",
                f"{r['seconds']:.1f}",
            ]
        )
    with_tflm = [r for r in results if r["tflm"] and r["live"]]
    bounded_gain = geomean([r["tflm"] / r["bounded"].peak_bytes for r in with_tflm])  # type: ignore[operator, union-attr]
    zero_gain = geomean([r["tflm"] / r["zero"].peak_bytes for r in with_tflm])  # type: ignore[operator, union-attr]
    lowest_gain = geomean([r["tflm"] / r["lowest"].peak_bytes for r in with_tflm])  # type: ignore[operator, union-attr]
    rows.append(
        [
            f"**geometric mean** ({len(with_tflm)} shared models TFLM runs)",
            "",
            "",
            "",
            f"**{bounded_gain:.2f}x**",
            "",
            "",
            "",
            f"**{zero_gain:.2f}x**",
            "",
            "",
            f"**{lowest_gain:.2f}x**",
            "",
            "",
            "",
        ]
    )
    header = [
        "model",
        "TFLM head (live; zoo: its method)",
        "memfit untiled",
        f"tiled, <= {MAX_OVERHEAD:.0%} MACs",
        "TFLM / tiled",
        "MAC overhead",
        "chains",
        "tiled, no recompute",
        "TFLM / no recompute",
        "chains (no recompute)",
        "lowest peak, any recompute",
        "TFLM / lowest",
        "its MAC overhead",
        "outputs = untiled",
        "optimize s",
    ]
    table = markdown_table(header, rows)
    print(table)
    if not args.only:
        publish("tiling", table)


if __name__ == "__main__":
    main()
