"""Latency of the generated C: beside TFLite Micro / onnxruntime, tiled plans beside untiled,
and the cost model fitted on every op measured here.

    .venv/bin/python -m benchmarks.latency [--only SUBSTRING] [--default]

For every shared .tflite model and every ONNX light zoo model, the untiled plan
(``plan_for_c``) is generated, compiled, verified (``memfit.codegen.verify``: against the NumPy
executor in the same arena and the reference runtime, int8 bit for bit, float within 1e-4 of the
largest output; once more linked with an allocator that aborts) and timed beside the reference
runtime (``memfit.codegen.bench``: TFLite Micro's ``invoke()`` for .tflite, onnxruntime with one
thread for .onnx; medians). The arena is checked twice: the one static array of the linked
program (``nm``) must be exactly the plan's arena.

For every shared model, the plans ``optimize`` returns with no recomputation allowed
(``max_mac_overhead=0``) and with up to ``MAX_OVERHEAD`` recomputed MACs are verified the same
way and timed in the same rounds as the untiled plan, so their latency relative to untiled is
measured side by side.

Every op's median time (per-op timers) is then a sample for ``memfit.codegen.cost_model``: the
fit on all of them is saved for this machine (``cost_model.cache_path()``; with ``--default``
also as the default shipped with memfit), and every plan's latency is predicted by a fit that
did not see its model (leave one model out), beside its measured latency.
"""

from __future__ import annotations

import argparse
import datetime
import platform
import subprocess
import tempfile
import time
import traceback
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from rich.progress import Progress

from benchmarks.common import geomean, markdown_table, onnx_light_models, publish, shared_models
from memfit.codegen import cost_model
from memfit.codegen.bench import Benchmark, bench_plans
from memfit.codegen.identifiers import c_identifier
from memfit.codegen.plan import kernel_workspace, plan_for_c
from memfit.codegen.program import CFLAGS
from memfit.codegen.toolchain import find_compiler
from memfit.codegen.verify import Verification, verify
from memfit.errors import MemfitError
from memfit.frontends import load_model
from memfit.ir.core import Graph
from memfit.ir.ops import macs
from memfit.planning import MemoryPlan
from memfit.runtime.kernels import is_hybrid, is_quantized
from memfit.tiling.discovery import optimize

MAX_OVERHEAD = 0.2
RUNS = 15
"""Timed runs of every plan (and of the reference) per model, in 5 rounds."""
HEAVY_MACS = (1e9, 5e9)
"""Models above these MACs get ``HEAVY_RUNS`` timed runs and ``HEAVY_SEEDS`` verified seeds."""
HEAVY_RUNS = (7, 3)
HEAVY_SEEDS = (0,)


@dataclass
class PlanResult:
    variant: str
    graph: Graph
    plan: MemoryPlan
    mac_overhead: float = 0.0
    chains: str = ""
    verification: Verification | None = None
    benchmark: Benchmark | None = None
    static_arena: int | None = None
    predicted_s: float | None = None


@dataclass
class ModelResult:
    path: Path
    arithmetic: str = "?"
    macs: int = 0
    runs: int = RUNS
    plans: list[PlanResult] = field(default_factory=list)
    error: str | None = None

    @property
    def name(self) -> str:
        return self.path.stem

    @property
    def untiled(self) -> PlanResult | None:
        return self.plans[0] if self.plans else None


def _arithmetic(graph: Graph) -> str:
    """int8, float32, or hybrid (float activations, some layers with int8 weights)."""
    if any(is_hybrid(op) for op in graph.ops):
        return "hybrid"
    return "int8" if any(is_quantized(op) for op in graph.ops) else "float32"


def _chains(rewrites: Sequence[dict]) -> str:
    parts = []
    for r in rewrites:
        size = f"P={r['partitions']}" if r["method"] == "fdt" else "x".join(map(str, r["grid"]))
        parts.append(f"{r['method'].upper()} {size} ({len(r['ops'])} ops)")
    return ", ".join(parts)


def _tiled_plans(graph: Graph) -> list[PlanResult]:
    """The plans path discovery returns without and with recompute, each once, if tiled."""
    found: list[PlanResult] = []
    seen: list[object] = []
    for overhead, label in ((0.0, "tiled, no recompute"), (MAX_OVERHEAD, "tiled, <= 20% MACs")):
        with kernel_workspace():
            result = optimize(graph, max_mac_overhead=overhead)
        rewrites = [dict(r) for r in result.rewrites]
        if not rewrites or rewrites in seen:
            continue
        seen.append(rewrites)
        found.append(
            PlanResult(label, result.graph, result.plan, result.mac_overhead, _chains(rewrites))
        )
    return found


def _static_arena(program: Path) -> int | None:
    """Size of the linked program's ``arena`` symbol (the model's one static array)."""
    listing = subprocess.run(
        ["nm", "-S", str(program)], capture_output=True, text=True, check=False
    ).stdout
    for line in listing.splitlines():
        fields = line.split()
        if len(fields) == 4 and fields[3] == "arena" and fields[2] in "bBdD":
            return int(fields[1], 16)
    return None


def measure(path: Path, progress: Progress, task: object) -> ModelResult:
    result = ModelResult(path)
    name = c_identifier(path.stem)
    try:
        progress.update(task, description=f"{path.stem}: planning")  # type: ignore[arg-type]
        graph = load_model(path)
        result.arithmetic = _arithmetic(graph)
        result.macs = sum(macs(op) for op in graph.ops)
        heavy = sum(result.macs > limit for limit in HEAVY_MACS)
        result.runs = HEAVY_RUNS[heavy - 1] if heavy else RUNS
        seeds = HEAVY_SEEDS if heavy else (0, 1, 2)
        result.plans.append(PlanResult("untiled", graph, plan_for_c(graph)))
        if path.suffix == ".tflite":
            progress.update(task, description=f"{path.stem}: optimizing")  # type: ignore[arg-type]
            result.plans += _tiled_plans(graph)
        for plan in result.plans:
            progress.update(task, description=f"{path.stem}: verifying {plan.variant}")  # type: ignore[arg-type]
            plan.verification = verify(plan.graph, plan.plan, str(path), name, seeds=seeds)
        progress.update(task, description=f"{path.stem}: timing")  # type: ignore[arg-type]
        with tempfile.TemporaryDirectory(prefix="memfit-latency-") as scratch:
            pairs = [(p.graph, p.plan) for p in result.plans]
            benchmarks = bench_plans(
                pairs, str(path), name, runs=result.runs, directory=Path(scratch)
            )
            for i, (plan, benchmark) in enumerate(zip(result.plans, benchmarks, strict=True)):
                plan.benchmark = benchmark
                where = Path(scratch) / str(i) if len(pairs) > 1 else Path(scratch)
                plan.static_arena = _static_arena(where / "build" / f"{name}_main_release")
    except Exception as exc:  # a row that says why, not a crash: the other models still run
        first = (str(exc).strip().splitlines() or [""])[0]
        result.error = f"{type(exc).__name__}: {first}"[:160]
        if not isinstance(exc, MemfitError):  # a bug: keep its traceback
            traceback.print_exc()
    return result


# ---- the cost model ------------------------------------------------------------------------


def measured_plans(results: Sequence[ModelResult]) -> list[cost_model.MeasuredPlan]:
    return [
        cost_model.MeasuredPlan(
            r.name, p.variant, p.benchmark.latency_s, p.graph, p.plan, p.benchmark.per_op
        )
        for r in results
        if r.error is None
        for p in r.plans
        if p.benchmark is not None
    ]


def fit_cost_model(
    results: Sequence[ModelResult], save: bool, default: bool
) -> cost_model.CostModel | None:
    measured = measured_plans(results)
    if not measured:
        return None
    for plan, predicted in cost_model.leave_one_model_out(measured):
        for r in results:
            for p in r.plans:
                if (r.name, p.variant) == (plan.model, plan.variant):
                    p.predicted_s = predicted
    compiler = find_compiler()
    fitted = cost_model.fit(
        [op for m in measured for op in m.ops],
        cost_model.provenance(measured, f"{compiler.description}; {' '.join(CFLAGS)}", RUNS),
    )
    if save:
        cost_model.save_cost_model(fitted, cost_model.cache_path())
        print(f"cost model saved to {cost_model.cache_path()}")
    if default:
        cost_model.save_cost_model(fitted, cost_model.DEFAULT_PATH)
        print(f"default cost model saved to {cost_model.DEFAULT_PATH}")
    return fitted


# ---- the tables ----------------------------------------------------------------------------


def _ms(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds * 1e3:.3f}"


def _verdict(v: Verification | None) -> str:
    if v is None:
        return "-"
    reference = v.comparisons[-1]
    against = reference.against
    if v.integer_outputs:
        detail = "bit-exact" if reference.bit_exact else "NOT bit-exact"
    else:
        detail = f"rel {reference.max_relative_diff:.1e}"
    ok = "" if all(c.matches for c in v.comparisons) else " **FAILS**"
    return f"{detail} vs {against}{ok}"


def _arena(p: PlanResult) -> str:
    size = p.plan.arena.size
    if p.static_arena is None:
        check = " (static arena not found)"
    elif p.static_arena != size:
        check = f" (**static {p.static_arena:,}**)"
    else:
        check = ""
    return f"{size:,}{check}"


def _error(p: PlanResult) -> str:
    if p.predicted_s is None or p.benchmark is None:
        return "-"
    return f"{p.predicted_s / p.benchmark.latency_s - 1:+.0%}"


def models_table(results: Sequence[ModelResult]) -> str:
    header = [
        "model",
        "arith.",
        "MMACs",
        "reference",
        "C ms",
        "reference ms",
        "reference / C",
        "arena bytes (= static)",
        "output check",
        "no heap",
        "cost model (LOMO)",
        "runs",
    ]
    rows = []
    for r in results:
        u = r.untiled
        if r.error is not None or u is None or u.benchmark is None:
            rows.append([r.name, r.arithmetic, f"{r.macs / 1e6:,.1f}"] + [""] * 8 + [r.error or ""])
            rows[-1][3] = "cannot run"
            continue
        b = u.benchmark
        rows.append(
            [
                r.name,
                r.arithmetic,
                f"{r.macs / 1e6:,.1f}",
                b.reference or "-",
                _ms(b.latency_s),
                _ms(b.reference_latency_s),
                f"{b.ratio:.2f}x" if b.ratio else "-",
                _arena(u),
                _verdict(u.verification),
                "yes" if u.verification and u.verification.no_heap else "**NO**",
                _error(u),
                str(r.runs),
            ]
        )
    for label, chosen in _groups(results):
        ratios = [r.untiled.benchmark.ratio for r in chosen]  # type: ignore[union-attr]
        mean = geomean([x for x in ratios if x])
        row = [f"**geometric mean, {label}** ({len(chosen)} models)"] + [""] * 11
        row[6] = f"**{mean:.2f}x**"
        rows.append(row)
    return markdown_table(header, rows)


def _groups(results: Sequence[ModelResult]) -> list[tuple[str, list[ModelResult]]]:
    ran = [
        r
        for r in results
        if r.error is None and r.untiled and r.untiled.benchmark and r.untiled.benchmark.ratio
    ]
    groups = [
        ("int8 vs TFLite Micro", [r for r in ran if r.arithmetic == "int8"]),
        (
            "float32 .tflite",
            [r for r in ran if r.arithmetic == "float32" and r.path.suffix != ".onnx"],
        ),
        ("hybrid vs LiteRT", [r for r in ran if r.arithmetic == "hybrid"]),
        ("float32 ONNX vs onnxruntime", [r for r in ran if r.path.suffix == ".onnx"]),
    ]
    return [(label, chosen) for label, chosen in groups if chosen]


def tiled_table(results: Sequence[ModelResult]) -> str:
    header = [
        "model",
        "plan",
        "chains",
        "arena bytes (= static)",
        "untiled arena",
        "MAC overhead",
        "latency / untiled",
        "output check",
        "cost model (LOMO)",
    ]
    rows = []
    by_variant: dict[str, list[float]] = {}
    for r in results:
        u = r.untiled
        if r.error is not None or u is None or u.benchmark is None:
            continue
        for p in r.plans[1:]:
            assert p.benchmark is not None
            relative = p.benchmark.latency_s / u.benchmark.latency_s
            by_variant.setdefault(p.variant, []).append(relative)
            rows.append(
                [
                    r.name,
                    p.variant,
                    p.chains,
                    _arena(p),
                    f"{u.plan.arena.size:,}",
                    f"{p.mac_overhead:.1%}",
                    f"{relative:.3f}",
                    _verdict(p.verification),
                    _error(p),
                ]
            )
    for variant, values in by_variant.items():
        row = [f"**geometric mean, {variant}** ({len(values)} plans)"] + [""] * 8
        row[6] = f"**{geomean(values):.3f}**"
        rows.append(row)
    return markdown_table(header, rows)


def cost_model_summary(results: Sequence[ModelResult]) -> str:
    errors = [
        abs(p.predicted_s / p.benchmark.latency_s - 1)
        for r in results
        for p in r.plans
        if p.predicted_s is not None and p.benchmark is not None
    ]
    if not errors:
        return ""
    errors.sort()
    median = errors[len(errors) // 2]
    return (
        f"Cost model, leave one model out over {len(errors)} measured plans: median absolute "
        f"error {median:.0%}, mean {sum(errors) / len(errors):.0%}, worst {errors[-1]:.0%}.\n"
    )


def _cpu() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def report(results: Sequence[ModelResult], seconds: float) -> str:
    compiler = find_compiler()
    when = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d")
    heavy = ", ".join(
        f"{runs} above {limit / 1e9:g} GMACs"
        for limit, runs in zip(HEAVY_MACS, HEAVY_RUNS, strict=True)
    )
    lines = [
        f"Measured {when} on {platform.machine()} ({_cpu()}), "
        f"{compiler.description}, `{' '.join(CFLAGS)}`; one thread everywhere; "
        f"`python -m benchmarks.latency` ({seconds / 60:.0f} min).",
        f"Latencies are medians of {RUNS} runs ({heavy}), C and reference alternating in 5 rounds; "
        "tiled plans are timed in the same rounds as their untiled plan. "
        "`reference / C` above 1: the generated C is faster. "
        "`cost model (LOMO)`: predicted / measured - 1, predicted by a fit on the other "
        "models' ops.",
        "",
        models_table(results),
        "Tiled plans (`memfit optimize`, path discovery with FDT and FFMT; planned with the C "
        "kernels' workspace):",
        "",
        tiled_table(results),
        cost_model_summary(results),
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--only", help="run only models whose name contains this")
    parser.add_argument(
        "--default", action="store_true", help="also write memfit's default cost model"
    )
    args = parser.parse_args()
    if args.default and args.only:
        parser.error("--default fits memfit's default cost model on every model: drop --only")
    models = shared_models() + onnx_light_models()
    if args.only:
        models = [m for m in models if args.only in m.stem]
    start = time.perf_counter()
    results = []
    with Progress() as progress:
        task = progress.add_task("timing", total=len(models))
        for path in models:
            results.append(measure(path, progress, task))
            progress.advance(task)
    fit_cost_model(results, save=not args.only, default=args.default)
    text = report(results, time.perf_counter() - start)
    print(text)
    if not args.only:
        publish("latency", text)


if __name__ == "__main__":
    main()
