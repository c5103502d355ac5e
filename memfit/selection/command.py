"""``memfit pareto MODEL``: the memory/latency Pareto front of primitive selection.

Profiles every applicable (layer, primitive, layout) and layout conversion on this machine
(cached), solves the ILP for the fastest choice and walks the front down to the smallest
memory, evaluates the baselines (greedy; each primitive alone), then emits, compiles, verifies
and times the chosen points and baselines side by side, and reports predicted beside measured
latency. Beside them, ``memfit optimize``'s choices (FDT, FFMT and MAFAT tiling with primitive
selection) at falling budgets and at half the time-optimal point's arena are measured in the
same rounds, and the front over every method is the measured points no other point beats on
both planned arena and latency. ``--features`` works on the model up to its first dense layer
(the classifier, whose weights do not depend on the selection, makes every build of VGG-19 or
AlexNet slow).
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from memfit.errors import UnsupportedModelError, UsageError
from memfit.ir.core import Graph
from memfit.selection import pareto
from memfit.selection.ilp import Evaluation, Problem
from memfit.selection.measure import Configuration, Measured, measure, other_ops_seconds
from memfit.selection.problem import build_problem
from memfit.selection.profile import CostCache, profile_graph, rich_progress, selectable_ops


@dataclass
class Point:
    label: str
    evaluation: Evaluation
    measured: Measured | None = None

    def to_json(self) -> dict[str, Any]:
        e, m = self.evaluation, self.measured
        latency = None if m is None else m.latency_s
        return {
            "label": self.label,
            "peak_bytes": e.peak_bytes,
            "workspace_bytes": e.workspace_bytes,
            "latency_s": latency,
            "latency_min_s": None if m is None else m.fastest_s,
            "predicted_latency_s": e.seconds,
            "prediction_error": None if m is None else e.seconds / m.fastest_s - 1.0,
            "prediction_error_vs_median": None if latency is None else e.seconds / latency - 1.0,
            "planned_arena_bytes": None if m is None else m.planned_arena_bytes,
            "verified": None if m is None else m.verified,
            "max_abs_diff": None if m is None else max(c.max_abs_diff for c in m.comparisons),
            "conversions": e.conversions,
            "nchw_tensors": sorted(e.nchw_tensors),
            "layers": [{"op": name, **choice.to_json()} for name, choice in e.assignment.items()],
        }

    @property
    def summary(self) -> str:
        counts = Counter(c.label for c in self.evaluation.assignment.values())
        return ", ".join(f"{label} x{n}" for label, n in counts.most_common())


@dataclass
class PlanPoint:
    """A plan ``memfit optimize`` chose (tiling and primitives), measured as generated C."""

    label: str
    budget: int | None
    source: str
    rewrites: tuple[dict[str, Any], ...]
    peak_bytes: int
    predicted_latency_s: float
    measured: Measured | None = None

    def to_json(self) -> dict[str, Any]:
        m = self.measured
        return {
            "label": self.label,
            "budget_bytes": self.budget,
            "method": self.source,
            "peak_bytes": self.peak_bytes,
            "latency_s": None if m is None else m.latency_s,
            "predicted_latency_s": self.predicted_latency_s,
            "verified": None if m is None else m.verified,
            "chains": [dict(r) for r in self.rewrites],
        }


@dataclass(frozen=True)
class FrontEntry:
    """A point of the front over every method: planned arena (activations and workspace, as
    the generated C allocates it) and measured latency."""

    label: str
    method: str
    peak_bytes: int
    latency_s: float

    def to_json(self) -> dict[str, Any]:
        return dict(vars(self))


def front_over_methods(points: Sequence[FrontEntry]) -> list[FrontEntry]:
    """The entries no other entry beats on both memory and latency, fastest first."""
    kept: list[FrontEntry] = []
    for entry in sorted(points, key=lambda e: (e.latency_s, e.peak_bytes)):
        if not kept or entry.peak_bytes < kept[-1].peak_bytes:
            kept.append(entry)
    return kept


@dataclass
class ParetoResult:
    model: str
    layers: int
    arena_bytes: int
    other_seconds: float
    front: list[Point]
    front_size: int
    front_all: list[Evaluation]
    greedy: Point
    singles: dict[str, Point]
    solver_seconds: list[float]
    ilp_optimal: bool
    profile_seconds: float
    measure_seconds: float
    plans: list[PlanPoint] = field(default_factory=list)

    def every_method(self) -> list[FrontEntry]:
        """The front over primitive selection and the optimizer's tiled plans (measured)."""
        entries = [
            FrontEntry(p.label, "primitives", p.measured.planned_arena_bytes, p.measured.latency_s)
            for p in (*self.front, self.greedy, *self.singles.values())
            if p.measured is not None
        ]
        entries += [
            FrontEntry(p.label, p.source, p.peak_bytes, p.measured.latency_s)
            for p in self.plans
            if p.measured is not None
        ]
        return front_over_methods(entries)

    def to_json(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "selectable_layers": self.layers,
            "activation_arena_bytes": self.arena_bytes,
            "other_ops_seconds": self.other_seconds,
            "front": [p.to_json() for p in self.front],
            "front_size": self.front_size,
            "front_predicted": [
                {"peak_bytes": e.peak_bytes, "predicted_latency_s": e.seconds}
                for e in self.front_all
            ],
            "greedy": self.greedy.to_json(),
            "single_primitive": {name: p.to_json() for name, p in self.singles.items()},
            "ilp_solve_seconds": self.solver_seconds,
            "ilp_optimal": self.ilp_optimal,
            "profile_seconds": self.profile_seconds,
            "measure_seconds": self.measure_seconds,
            "optimizer_plans": [p.to_json() for p in self.plans],
            "front_every_method": [e.to_json() for e in self.every_method()],
        }


def features(graph: Graph) -> Graph:
    """``graph`` up to its first dense layer (the classifier): the dense layer's input becomes
    the output."""
    cut = graph.copy()
    for op in cut.ops:
        if op.kind == "fully_connected":
            x = op.inputs[0]
            while x is not None and x.producer is not None and x.producer.kind == "reshape":
                x = x.producer.inputs[0]
            assert x is not None
            cut.outputs = [x]
            inputs = {t.name for t in cut.inputs}
            cut.external_perm = {k: v for k, v in cut.external_perm.items() if k in inputs}
            cut.prune()
            break
    return cut


def single_baselines(problem: Problem) -> dict[str, Evaluation]:
    """Each primitive alone, in whichever of its layouts the costs predict faster."""
    best: dict[str, Evaluation] = {}
    for label, evaluation in pareto.singles(problem).items():
        name = label.split("/")[0]
        if name not in best or evaluation.seconds < best[name].seconds:
            best[name] = evaluation
    return best


def run_pareto(
    model: str,
    *,
    points: int = 5,
    singles: int | None = None,
    runs: int = 6,
    cut_features: bool = False,
    tiling: bool = True,
    cache: Path | None = None,
    directory: Path | None = None,
    quiet: bool = False,
) -> ParetoResult:
    from memfit.api import load

    graph = load(model)
    if cut_features:
        graph = features(graph)
    ops = selectable_ops(graph)
    if not ops:
        raise UnsupportedModelError(
            f"model {model!r} has no float32 or int8 conv2d layer with constant weights: "
            "primitive selection has nothing to choose"
        )

    def say(message: str) -> None:
        if not quiet:
            from rich.console import Console

            Console(stderr=True).log(message)

    start = time.perf_counter()
    stop, progress = rich_progress("profiling primitives") if not quiet else (None, None)
    try:
        costs = profile_graph(graph, CostCache(cache), progress)
    finally:
        if stop is not None:
            stop()
    with tempfile.TemporaryDirectory(prefix="memfit-pareto-") as scratch:
        root = directory or Path(scratch)
        say("profiling the other ops (one build with the default kernels)")
        other, _ = other_ops_seconds(graph, set(costs), root / "baseline")
        profile_seconds = time.perf_counter() - start
        problem = build_problem(graph, costs, other)
        say(f"solving the ILP over {len(problem.layers)} layers")
        walked = pareto.front(problem)
        chosen = pareto.pick(walked.points, points)
        front = [Point(f"front {i}", e) for i, e in enumerate(chosen)]
        greedy = Point("greedy", pareto.greedy(problem))
        every_single = single_baselines(problem)
        ranked = sorted(every_single, key=lambda n: every_single[n].seconds)
        measured_singles = set(ranked if singles is None else ranked[:singles])
        single_points = {name: Point(name, e) for name, e in every_single.items()}
        to_measure = [*front, greedy, *(single_points[n] for n in ranked if n in measured_singles)]
        unique: dict[tuple[Any, ...], list[Point]] = {}
        for point in to_measure:
            key = tuple(sorted((k, v.label) for k, v in point.evaluation.assignment.items()))
            unique.setdefault(key, []).append(point)
        configurations = [
            Configuration(group[0].evaluation.assignment, group[0].evaluation.nchw_tensors)
            for group in unique.values()
        ]
        # The half-memory point asked of the front: half the time-optimal point's arena.
        half = _planned_arena(graph, chosen[0]) // 2
        plans = optimizer_plans(graph, say, cache, [half]) if tiling else []
        configurations += [_configuration(candidate) for _, candidate in plans]
        start = time.perf_counter()
        results = measure(
            graph,
            model,
            configurations,
            runs=runs,
            directory=root / "configs",
            progress=say,
            reference=not cut_features,
        )
        measure_seconds = time.perf_counter() - start
    for group, result in zip(unique.values(), results, strict=False):
        for point in group:
            point.measured = result
    for (plan_point, _), result in zip(plans, results[len(unique) :], strict=True):
        plan_point.measured = result
    return ParetoResult(
        model=model,
        layers=len(problem.layers),
        arena_bytes=problem.arena_bytes,
        other_seconds=other,
        front=front,
        front_size=len(walked.points),
        front_all=list(walked.points),
        greedy=greedy,
        singles=single_points,
        solver_seconds=list(walked.solver_seconds),
        ilp_optimal=walked.optimal,
        profile_seconds=profile_seconds,
        measure_seconds=measure_seconds,
        plans=[p for p, _ in plans],
    )


OPTIMIZER_MAX_MAC_OVERHEAD = 0.2


def optimizer_plans(
    graph: Graph, say: Any, cache: Path | None = None, budgets: Sequence[int] = ()
) -> list[tuple[PlanPoint, Any]]:
    """``memfit optimize``'s chosen plan without a budget (the smallest peak), at budgets of
    the untiled peak's fractions (``memfit.optimizer.sweep``) and at ``budgets`` (bytes), each
    once: (point, candidate)."""
    from memfit.codegen.plan import kernel_workspace
    from memfit.optimizer import choose, sweep

    def decisions() -> Iterator[tuple[str, int | None, Any]]:
        for fraction, budget, decision in sweep(
            graph, max_mac_overhead=OPTIMIZER_MAX_MAC_OVERHEAD, profile_cache=cache
        ):
            label = "optimize, smallest peak" if budget is None else f"optimize, {fraction:g}x"
            yield label, budget, decision
        for budget in budgets:
            yield (
                f"optimize, {_mib(budget)}",
                budget,
                choose(
                    graph,
                    budget=budget,
                    max_mac_overhead=OPTIMIZER_MAX_MAC_OVERHEAD,
                    profile_cache=cache,
                ),
            )

    found: dict[tuple[Any, ...], tuple[PlanPoint, Any]] = {}
    with kernel_workspace():
        say("memfit optimize: the smallest peak, then falling budgets")
        for label, budget, decision in decisions():
            chosen = decision.chosen
            if chosen.source == "untiled" or (budget is not None and not decision.fits_budget):
                continue
            key = (chosen.peak_bytes, json.dumps(chosen.rewrites, sort_keys=True))
            point = PlanPoint(
                label,
                budget,
                chosen.source,
                chosen.rewrites,
                chosen.peak_bytes,
                chosen.predicted_latency_s,
            )
            found.setdefault(key, (point, chosen))
    return list(found.values())


def _planned_arena(graph: Graph, evaluation: Evaluation) -> int:
    """The arena the generated C of ``graph`` with ``evaluation``'s primitives needs (its
    activations and every op's workspace, as planned for it)."""
    from memfit.codegen.plan import plan_for_c
    from memfit.selection.lowering import configure

    configured = configure(graph, evaluation.assignment, evaluation.nchw_tensors)
    return plan_for_c(configured).arena.size


def _configuration(candidate: Any) -> Configuration:
    """A tiled candidate as a configuration to measure: its graph, with its primitives (if it
    chose any) as the assignment to check layer by layer."""
    from memfit.selection.lowering import parse_record

    assignment: dict[str, Any] = {}
    nchw: frozenset[str] = frozenset()
    for record in candidate.rewrites:
        if record.get("method") == "primitives":
            assignment, nchw = parse_record(record)
    return Configuration(assignment, nchw, candidate.graph)


# ---- output ---------------------------------------------------------------------------------


def _mib(n: int) -> str:
    return f"{n / 2**20:.2f}"


def _ms(s: float | None) -> str:
    return "-" if s is None else f"{s * 1e3:.2f}"


def print_table(result: ParetoResult) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(
        "point",
        "peak MiB",
        "workspace MiB",
        "measured ms",
        "fastest ms",
        "predicted ms",
        "error",
        "verified",
        "choices",
        title=f"{result.model}: primitive selection, {result.layers} layers, activation arena "
        f"{_mib(result.arena_bytes)} MiB",
    )
    rows = [*result.front, result.greedy, *result.singles.values()]
    for p in rows:
        e, m = p.evaluation, p.measured
        error = "-" if m is None else f"{e.seconds / m.fastest_s - 1:+.1%}"
        verified = "-" if m is None else ("yes" if m.verified else "NO")
        table.add_row(
            p.label,
            _mib(e.peak_bytes),
            _mib(e.workspace_bytes),
            _ms(None if m is None else m.latency_s),
            _ms(None if m is None else m.fastest_s),
            _ms(e.seconds),
            error,
            verified,
            p.summary,
        )
    console = Console(width=160)
    console.print(table)
    console.print(
        "measured: median of the timed runs; error: predicted against the fastest run (both "
        "sides are minima: the machine is shared)"
    )
    if result.plans:
        every = Table(
            "point",
            "method",
            "planned arena MiB",
            "measured ms",
            "predicted ms",
            title="memfit optimize's plans (tiling and primitives)",
        )
        for plan_point in result.plans:
            m = plan_point.measured
            every.add_row(
                plan_point.label,
                plan_point.source,
                _mib(plan_point.peak_bytes),
                _ms(None if m is None else m.latency_s),
                _ms(plan_point.predicted_latency_s),
            )
        console.print(every)
        console.print(
            "front over every method (planned arena, measured ms): "
            + "; ".join(
                f"{e.label} [{e.method}] {_mib(e.peak_bytes)} MiB {e.latency_s * 1e3:.2f} ms"
                for e in result.every_method()
            )
        )
    fastest = result.front[0]
    measured_singles = [p for p in result.singles.values() if p.measured is not None]
    if fastest.measured is not None and measured_singles:
        best = min(measured_singles, key=lambda p: p.measured.latency_s)  # type: ignore[union-attr]
        assert best.measured is not None and result.greedy.measured is not None
        console.print(
            f"time-optimal: {best.measured.latency_s / fastest.measured.latency_s:.2f}x faster "
            f"than the best single primitive ({best.label}), "
            f"{result.greedy.measured.latency_s / fastest.measured.latency_s:.2f}x greedy's speed; "
            f"front of {result.front_size} points, ILP "
            f"{statistics.fmean(result.solver_seconds):.2f} s per solve"
        )


def plot(result: ParetoResult, path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(7, 4.5))
    front = [p for p in result.front if p.measured is not None]
    axes.plot(
        [p.evaluation.peak_bytes / 2**20 for p in front],
        [p.measured.latency_s * 1e3 for p in front],  # type: ignore[union-attr]
        "o-",
        label="ILP front (measured)",
    )
    axes.plot(
        [e.peak_bytes / 2**20 for e in result.front_all],
        [e.seconds * 1e3 for e in result.front_all],
        ".:",
        color="gray",
        label="ILP front (predicted)",
    )
    if result.greedy.measured is not None:
        axes.plot(
            result.greedy.evaluation.peak_bytes / 2**20,
            result.greedy.measured.latency_s * 1e3,
            "s",
            color="red",
            label="greedy",
        )
    for name, p in result.singles.items():
        if p.measured is None:
            continue
        x, y = p.evaluation.peak_bytes / 2**20, p.measured.latency_s * 1e3
        axes.plot(x, y, "^", color="green")
        axes.annotate(name, (x, y), fontsize=7, xytext=(3, 3), textcoords="offset points")
    axes.plot([], [], "^", color="green", label="single primitive")
    plans = [p for p in result.plans if p.measured is not None]
    if plans:
        axes.plot(
            [p.peak_bytes / 2**20 for p in plans],
            [p.measured.latency_s * 1e3 for p in plans],  # type: ignore[union-attr]
            "D",
            color="purple",
            label="memfit optimize (tiling + primitives)",
        )
        every = result.every_method()
        axes.step(
            [e.peak_bytes / 2**20 for e in every],
            [e.latency_s * 1e3 for e in every],
            where="post",
            color="black",
            linewidth=0.8,
            label="front over every method",
        )
    axes.set_xlabel("peak memory: activation arena + workspace (MiB)")
    axes.set_ylabel("measured latency (ms)")
    axes.set_title(Path(result.model).name)
    axes.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


# ---- the command ----------------------------------------------------------------------------


def add_pareto_parser(sub: Any) -> argparse.ArgumentParser:
    """Register ``memfit pareto`` on the CLI's subparsers."""
    p = sub.add_parser(
        "pareto",
        help="primitive selection (TASO): the memory/latency Pareto front, measured",
        description=__doc__.split("\n\n")[0] if __doc__ else None,
    )
    p.add_argument("model", help="a .onnx or .tflite file (float32 or int8), or zoo:NAME")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--plot", metavar="FILE.png", help="plot peak memory against latency")
    p.add_argument("--points", type=int, default=5, help="front points to measure (default 5)")
    p.add_argument(
        "--singles",
        type=int,
        help="measure only the N single-primitive baselines predicted fastest",
    )
    p.add_argument("--runs", type=int, default=6, help="timed runs per configuration")
    p.add_argument(
        "--features", action="store_true", help="only the model up to its first dense layer"
    )
    p.add_argument(
        "--no-tiling",
        action="store_true",
        help="primitive selection alone (skip memfit optimize's tiled plans)",
    )
    p.add_argument("--cache", metavar="FILE.json", help="cost cache (default ~/.cache/memfit)")
    p.set_defaults(handler=cmd_pareto)
    return p


def cmd_pareto(args: argparse.Namespace) -> int:
    for flag in ("points", "runs"):
        if getattr(args, flag) < 1:
            raise UsageError(f"--{flag} {getattr(args, flag)}: expected at least 1")
    if args.singles is not None and args.singles < 0:
        raise UsageError(f"--singles {args.singles}: expected 0 or more")
    if args.plot and Path(args.plot).suffix.lower() not in (".png", ".svg", ".pdf"):
        raise UsageError(f"--plot {args.plot}: give a .png, .svg or .pdf file")
    result = run_pareto(
        str(args.model),
        points=args.points,
        singles=args.singles,
        runs=args.runs,
        cut_features=args.features,
        tiling=not args.no_tiling,
        cache=Path(args.cache) if args.cache else None,
        quiet=args.json,
    )
    if args.plot:
        plot(result, args.plot)
    if args.json:
        print(json.dumps(result.to_json(), indent=2))
    else:
        print_table(result)
    return 0 if all(p.measured is None or p.measured.verified for p in _points(result)) else 1


def _points(result: ParetoResult) -> list[Point | PlanPoint]:
    return [*result.front, result.greedy, *result.singles.values(), *result.plans]
