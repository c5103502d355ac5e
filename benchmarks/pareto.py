"""Primitive selection (TASO) on the ONNX light zoo's AlexNet, GoogLeNet, VGG-19, ResNet-50 and
SqueezeNet, float32: the Pareto front, greedy and single-primitive baselines, every point
emitted as C, verified and timed on this machine. Writes ``results/pareto.md`` and
``results/pareto.json``.

    .venv/bin/python -m benchmarks.pareto [--only NAME ...] [--singles N]

AlexNet and VGG-19 are measured up to their first dense layer (``memfit pareto --features``):
their classifiers' weights (240 and 470 MB) do not depend on the selection and make each of the
dozen builds take minutes. The four single-primitive baselines predicted fastest are measured
(``--singles``); the others are reported with their predicted time only.
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

from benchmarks.common import RESULTS, markdown_table, onnx_light_models, publish
from memfit.selection.command import ParetoResult, run_pareto

NETWORKS = {
    "light_bvlc_alexnet": ("AlexNet", True),
    "light_inception_v1": ("GoogLeNet", False),
    "light_vgg19": ("VGG-19", True),
    "light_resnet50": ("ResNet-50", False),
    "light_squeezenet": ("SqueezeNet", False),
}


def summarize(name: str, result: ParetoResult, features: bool) -> dict[str, Any]:
    data = result.to_json()
    fastest = data["front"][0]
    singles = {k: v for k, v in data["single_primitive"].items() if v["latency_s"] is not None}
    best_name = min(singles, key=lambda k: singles[k]["latency_s"])
    half = [
        p
        for p in data["front"]
        if 2 * p["peak_bytes"] <= fastest["peak_bytes"] and p["latency_s"] is not None
    ]
    measured = [*data["front"], data["greedy"], *singles.values()]
    return {
        "network": name + (" (features)" if features else ""),
        "layers": data["selectable_layers"],
        "front_points": data["front_size"],
        "ilp_max_s": max(data["ilp_solve_seconds"]),
        "optimal_ms": fastest["latency_s"] * 1e3,
        "optimal_peak": fastest["peak_bytes"],
        "best_single": best_name,
        "best_single_ms": singles[best_name]["latency_s"] * 1e3,
        "speedup_vs_single": singles[best_name]["latency_s"] / fastest["latency_s"],
        "greedy_ms": data["greedy"]["latency_s"] * 1e3,
        "speedup_vs_greedy": data["greedy"]["latency_s"] / fastest["latency_s"],
        "half_memory": None
        if not half
        else {
            "memory_ratio": fastest["peak_bytes"] / half[0]["peak_bytes"],
            "time_ratio": half[0]["latency_s"] / fastest["latency_s"],
        },
        "max_prediction_error": max(abs(p["prediction_error"]) for p in measured),
        "max_prediction_error_vs_median": max(
            abs(p["prediction_error_vs_median"]) for p in measured
        ),
        "verified": all(p["verified"] for p in measured)
        and all(p["verified"] for p in data.get("optimizer_plans", [])),
        "measured_points": len(measured),
        "optimizer_plans": [
            {k: p[k] for k in ("label", "method", "peak_bytes", "latency_s")}
            for p in data.get("optimizer_plans", [])
        ],
        "front_every_method": data.get("front_every_method", []),
    }


def every_method_table(rows: list[dict[str, Any]]) -> str:
    """Per network, the front over primitive selection and memfit optimize's tiled plans
    (planned arena, measured latency)."""
    lines = []
    for r in rows:
        front = r.get("front_every_method")
        if not front:
            continue
        fastest = front[0]
        points = "; ".join(
            f"{e['method']}: {e['peak_bytes'] / 2**20:.2f} MiB, {e['latency_s'] * 1e3:.1f} ms"
            for e in front
        )
        smallest = front[-1]
        half = next((e for e in front if 2 * e["peak_bytes"] <= fastest["peak_bytes"]), None)
        lines.append(
            [
                r["network"],
                str(len(front)),
                f"{fastest['peak_bytes'] / smallest['peak_bytes']:.2f}x less memory, "
                f"{smallest['latency_s'] / fastest['latency_s'] - 1:+.1%} time",
                "none"
                if half is None
                else f"{half['method']}: {fastest['peak_bytes'] / half['peak_bytes']:.2f}x less, "
                f"{half['latency_s'] / fastest['latency_s'] - 1:+.1%}",
                points,
            ]
        )
    header = [
        "network",
        "points",
        "smallest vs fastest",
        "fastest with <= 1/2 memory",
        "front (method: arena, measured)",
    ]
    return markdown_table(header, lines) if lines else ""


def table(rows: list[dict[str, Any]]) -> str:
    header = [
        "network",
        "conv layers",
        "front points",
        "ILP max s",
        "time-optimal ms",
        "best single (ms)",
        "vs best single",
        "greedy ms",
        "vs greedy",
        "<= 1/2 memory point: memory, time",
        "max pred. error (fastest / median)",
        "verified",
    ]
    lines = []
    for r in rows:
        half = r["half_memory"]
        lines.append(
            [
                r["network"],
                str(r["layers"]),
                str(r["front_points"]),
                f"{r['ilp_max_s']:.2f}",
                f"{r['optimal_ms']:.1f}",
                f"{r['best_single']} ({r['best_single_ms']:.1f})",
                f"{r['speedup_vs_single']:.2f}x",
                f"{r['greedy_ms']:.1f}",
                f"{r['speedup_vs_greedy']:.2f}x",
                "none" if half is None else
                f"{half['memory_ratio']:.2f}x less, {half['time_ratio'] - 1:+.1%}",
                f"{r['max_prediction_error']:.1%} / {r['max_prediction_error_vs_median']:.1%}",
                "yes" if r["verified"] else "NO",
            ]
        )  # fmt: skip
    return markdown_table(header, lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", nargs="*", help="network file stems to run")
    parser.add_argument("--singles", type=int, default=4)
    parser.add_argument("--runs", type=int, default=6)
    args = parser.parse_args()
    RESULTS.mkdir(exist_ok=True)
    raw_path = RESULTS / "pareto.json"
    raw: dict[str, Any] = json.loads(raw_path.read_text()) if raw_path.exists() else {}
    for path in onnx_light_models():
        if path.stem not in NETWORKS or (args.only and path.stem not in args.only):
            continue
        name, features = NETWORKS[path.stem]
        start = time.perf_counter()
        result = run_pareto(
            str(path), points=5, singles=args.singles, runs=args.runs, cut_features=features
        )
        raw[path.stem] = {
            "summary": summarize(name, result, features),
            "result": result.to_json(),
            "wall_s": time.perf_counter() - start,
        }
        raw_path.write_text(json.dumps(raw, indent=1))
        print(table([raw[path.stem]["summary"]]), flush=True)
    rows = [raw[stem]["summary"] for stem in NETWORKS if stem in raw]
    text = (
        "Primitive selection (TASO), float32, measured on this machine (2 shared cores): "
        "latencies are medians of the timed runs of the generated C, every configuration "
        "side by side in the same rounds; prediction error compares the ILP's predicted time "
        "with the fastest run (costs are each layer's fastest run in profiling passes over "
        "the model's layers in order) and with the median. "
        "Regenerate with `.venv/bin/python -m benchmarks.pareto`.\n\n" + table(rows)
    )
    missing = [NETWORKS[stem][0] for stem in NETWORKS if stem not in raw]
    if missing:
        text += f"\nNot measured yet: {', '.join(missing)}.\n"
    every = every_method_table(rows)
    if every:
        text += (
            "\nThe front over every method: the measured points above and `memfit optimize`'s "
            "plans (FDT, FFMT and MAFAT tiling with primitive selection; smallest peak, "
            "budgets of 1/2 and 1/4 of the untiled arena and of 1/2 the time-optimal point's "
            "arena, at most 20% recomputed MACs), "
            "planned arena against measured latency, keeping the points no other beats on "
            "both:\n\n" + every
        )
    publish("pareto", text)  # results/pareto.md and the README's table
    print(text)


if __name__ == "__main__":
    main()
