"""The ``memfit`` command line."""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from memfit.errors import InputError, InternalError, MemfitError, UsageError


class _Parser(argparse.ArgumentParser):
    """argparse that reports bad flags as a UsageError (exit code 2, one message)."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise UsageError(f"{message} (see `{self.prog} --help`)")


def _parse_input_shapes(specs: Sequence[str]) -> dict[str, tuple[int, ...]]:
    shapes = {}
    for spec in specs:
        name, sep, dims = spec.rpartition("=")
        try:
            shape = tuple(int(d) for d in dims.replace("x", ",").split(","))
        except ValueError:
            shape = ()
        if not sep or not name or not shape or min(shape) <= 0:
            raise UsageError(
                f"--input-shape {spec!r}: expected NAME=D1,D2,... with positive integers, "
                "e.g. --input-shape input=1,3,224,224"
            )
        shapes[name] = shape
    return shapes


def _load(args: argparse.Namespace, canonical: bool = True):  # type: ignore[no-untyped-def]
    from memfit.frontends import load_model

    shapes = _parse_input_shapes(args.input_shape or []) or None
    return load_model(args.model, shapes, canonical=canonical)


def _read_inputs(path: str, graph) -> dict[str, np.ndarray]:  # type: ignore[no-untyped-def]
    file = Path(path)
    if not file.exists():
        raise InputError(f"input file {path} does not exist")
    try:
        if file.suffix == ".npz":
            with np.load(file, allow_pickle=False) as data:
                return {name: data[name] for name in data.files}
        if file.suffix == ".npy":
            array = np.load(file, allow_pickle=False)
            if len(graph.inputs) != 1:
                names = ", ".join(t.name for t in graph.inputs)
                raise InputError(
                    f"the model has {len(graph.inputs)} inputs ({names}); give an .npz file "
                    "with one array per input name"
                )
            return {graph.inputs[0].name: array}
    except (ValueError, OSError, EOFError) as exc:
        raise InputError(f"cannot read {path} as a NumPy file: {exc}") from exc
    raise InputError(f"input file {path}: expected .npy (one input) or .npz (by input name)")


def _write_atomically(path: Path, write) -> None:  # type: ignore[no-untyped-def]
    """Write through a temporary file in the same folder so no partial file is left."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=path.suffix)
    os.close(handle)
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _apply_plan(graph, path: str):  # type: ignore[no-untyped-def]
    """The graph rewritten as the plan file says (tiling included), its checked plan, and the
    file's rewrite records."""
    from memfit.codegen.plan import restore_any
    from memfit.planning.plan_file import fingerprint, read_plan

    document = read_plan(path)
    graph, plan = restore_any(graph, document, fingerprint(graph), source=f"plan {path}")
    return graph, plan, list(document["rewrites"])


def cmd_run(args: argparse.Namespace) -> int:
    from memfit.api import run

    out = Path(args.output)
    if out.suffix not in (".npy", ".npz"):
        raise UsageError(f"--output {out}: expected a .npy or .npz file name")
    graph = _load(args)
    if out.suffix == ".npy" and len(graph.outputs) != 1:
        raise UsageError(
            f"the model has {len(graph.outputs)} outputs; write them with --output FILE.npz"
        )
    inputs = _read_inputs(args.input, graph)
    plan: Any = "memfit"  # without a plan file, run inside the arena memfit plans
    if args.plan:
        graph, memory_plan, _ = _apply_plan(graph, args.plan)
        plan = memory_plan.arena
    outputs = run(graph, inputs, plan)
    if out.suffix == ".npy":
        _write_atomically(out, lambda tmp: np.save(tmp, next(iter(outputs.values()))))
    else:
        _write_atomically(out, lambda tmp: np.savez(tmp, **outputs))  # type: ignore[arg-type]
    for name, array in outputs.items():
        print(f"{name}: {array.dtype}{list(array.shape)} -> {out}")
    return 0


def cmd_inspect(args: argparse.Namespace) -> int:
    from memfit.api import inspect
    from memfit.ir.ops import macs

    graph = _load(args)
    sys.stdout.write(inspect(graph))
    total = sum(macs(op) for op in graph.ops)
    weights = sum(t.nbytes for t in graph.constants())
    print(f"{len(graph.ops)} ops, {total:,} MACs, {weights:,} bytes of constants")
    return 0


def _progress(message: str, quiet: bool = False):  # type: ignore[no-untyped-def]
    """A spinner on stderr for work that may take more than a second; yields ``report(text)``,
    which a long search calls to update it (quiet, or not a terminal: no spinner)."""
    import contextlib

    from rich.console import Console

    console = Console(stderr=True)
    if quiet or not console.is_terminal:
        return contextlib.nullcontext(lambda text: None)

    @contextlib.contextmanager
    def spinner():  # type: ignore[no-untyped-def]
        with console.status(message) as status:
            yield lambda text: status.update(f"{message}: {text}")

    return spinner()


def cmd_analyze(args: argparse.Namespace) -> int:
    import json

    from rich.console import Console
    from rich.table import Table

    from memfit.analysis.memory import analyze_memory

    graph = _load(args)
    if args.alignment <= 0 or args.alignment & (args.alignment - 1):
        raise UsageError(f"--alignment {args.alignment}: expected a power of two, e.g. 16")
    from memfit.planning.plan_file import fingerprint, plan_to_json, save_plan

    model_fingerprint = fingerprint(graph)
    as_imported = _load(args, canonical=False) if args.model.endswith(".tflite") else None
    rewrites: list[Any] = []
    if args.plan:
        if as_imported is None:
            as_imported = graph.copy()
        graph, plan, rewrites = _apply_plan(graph, args.plan)
        if plan.arena.alignment != args.alignment:
            raise UsageError(
                f"--alignment {args.alignment} differs from the plan's {plan.arena.alignment}; "
                "leave --alignment out with --plan"
            )
        analysis = analyze_memory(graph, args.alignment, as_imported=as_imported, plan=plan)
    else:
        with _progress(f"planning memory of {graph.name} ({len(graph.ops)} ops)"):
            analysis = analyze_memory(graph, args.alignment, as_imported=as_imported)
    if args.output:
        document = plan_to_json(graph, analysis.plan, model_fingerprint, rewrites)
        out = Path(args.output)
        _write_atomically(out, lambda tmp: save_plan(tmp, document))
    if args.plot:
        from memfit.report.plots import plot_memory

        plot = Path(args.plot)
        _write_atomically(plot, lambda tmp: plot_memory(analysis, tmp))
    if args.json:
        print(json.dumps(analysis.to_json(), indent=2))
        return 0
    console = Console()
    table = Table("step", "op", "kind", "output shape", "live bytes", title=graph.name)
    peak = max((r.live_bytes for r in analysis.rows), default=0)
    for row in analysis.rows:
        live = f"{row.live_bytes:,}"
        table.add_row(
            str(row.step),
            row.op,
            row.kind,
            "x".join(map(str, row.output_shape)),
            f"[bold]{live}[/bold]" if row.live_bytes == peak else live,
        )
    console.print(table)
    plan = analysis.plan
    summary = Table.grid(padding=(0, 2))
    summary.add_row(
        "memfit arena (peak)",
        f"{analysis.peak_bytes:,} bytes",
        f"{plan.assignment.algorithm}{' (optimal)' if plan.assignment.optimal else ''}",
    )
    summary.add_row(
        "lower bound, memfit schedule",
        f"{analysis.lower_bound_bytes:,} bytes",
        f"{plan.schedule.method}{' (optimal)' if plan.schedule.optimal else ''}",
    )
    summary.add_row(
        "lower bound, model order",
        f"{analysis.model_order_lower_bound_bytes:,} bytes",
        "no aliasing, no in-place",
    )
    summary.add_row(
        "TFLite Micro's method",
        f"{analysis.tflm_greedy_bytes:,} bytes",
        "greedy by size, model order",
    )
    ratio = analysis.tflm_greedy_bytes / max(analysis.peak_bytes, 1)
    summary.add_row("saving vs TFLite Micro's method", f"{ratio:.2f}x", "")
    summary.add_row("planner time", f"{analysis.planner_seconds:.2f} s", "")
    console.print(summary)
    if args.plot:
        console.print(f"charts written to {args.plot}")
    return 0


def cmd_optimize(args: argparse.Namespace) -> int:
    import json

    from memfit.codegen.plan import kernel_workspace
    from memfit.errors import BudgetError
    from memfit.optimizer import choose
    from memfit.planning import tflm_greedy
    from memfit.planning.plan_file import fingerprint, plan_to_json, save_plan
    from memfit.units import format_size, parse_size

    budget = parse_size(args.budget, "--budget") if args.budget is not None else None
    methods = tuple(m.strip() for m in args.methods.split(",") if m.strip())
    if args.max_mac_overhead is not None and not args.max_mac_overhead >= 0:
        raise UsageError(
            f"--max-mac-overhead {args.max_mac_overhead}: expected a fraction of 0 or more, "
            "e.g. 0.2 for at most 20% more MACs"
        )
    if args.best_effort and not args.output:
        raise UsageError("--best-effort writes the best plan found: give -o PLAN.json too")
    graph = _load(args)
    model_fingerprint = fingerprint(graph)
    as_imported = _load(args, canonical=False) if args.model.endswith(".tflite") else graph
    tflm_bytes = tflm_greedy(as_imported).arena.size
    with _progress(f"optimizing {graph.name}", args.json) as report, kernel_workspace():
        # Planned with the C kernels' workspace: the arena the generated code needs.
        result = choose(
            graph,
            budget=budget,
            methods=methods,
            max_mac_overhead=args.max_mac_overhead,
            progress=report,
        )
    summary = {**result.to_json(), "tflm_greedy_bytes": tflm_bytes}
    if args.measure:
        summary.update(_measure_plans(args, result))
    chosen = result.chosen
    if args.output and (result.fits_budget or args.best_effort):
        document = plan_to_json(
            chosen.graph, chosen.plan, model_fingerprint, chosen.rewrites, summary
        )
        _write_atomically(Path(args.output), lambda tmp: save_plan(tmp, document))
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        written = args.output if result.fits_budget or args.best_effort else None
        _print_optimize(result, summary, written)
    if not result.fits_budget:
        assert budget is not None
        where = result.limiting_buffer
        cause = (
            f"; the peak is set by {where.tensor} ({where.size:,} bytes, written by "
            f"{where.producer or 'the model input'})"
            if where
            else ""
        )
        written = f" (best plan written to {args.output})" if args.best_effort else ""
        raise BudgetError(
            f"no plan found within the budget of {format_size(budget)}: the smallest peak "
            f"found is {format_size(chosen.peak_bytes)}{cause}{written}. Raise the budget, "
            "allow recompute (--max-mac-overhead), or write the best plan with --best-effort -o"
        )
    return 0


def _measure_plans(args: argparse.Namespace, result) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    """Latency of the chosen plan's and the untiled plan's generated C, side by side."""
    from memfit.codegen.bench import bench_plans

    plans = [(result.untiled.graph, result.untiled.plan), (result.chosen.graph, result.chosen.plan)]
    with _progress(f"timing the generated C of {result.untiled.graph.name}", args.json):
        untiled, chosen = bench_plans(plans, args.model, _c_name(args), runs=args.runs)
    return {"latency_s": chosen.latency_s, "untiled_latency_s": untiled.latency_s}


def _print_optimize(result, summary: dict[str, Any], output: str | None) -> None:  # type: ignore[no-untyped-def]
    from rich.console import Console
    from rich.table import Table

    from memfit.tiling import describe_size
    from memfit.units import format_size

    console = Console()
    chosen = result.chosen
    tflm_bytes = summary["tflm_greedy_bytes"]
    if chosen.rewrites:
        table = Table(
            "#",
            "method",
            "parts",
            "ops",
            "first op",
            "last op",
            title=f"rewrites ({chosen.source})",
        )
        for index, record in enumerate(chosen.rewrites, 1):
            parts = describe_size(record)
            ops = record["ops"] or ["-"]
            table.add_row(
                str(index), record["method"].upper(), parts, str(len(ops)), ops[0], ops[-1]
            )
        console.print(table)
    else:
        console.print("no tiling or primitive choice improves on the untiled plan")
    grid = Table.grid(padding=(0, 2))
    peak = max(chosen.peak_bytes, 1)
    untiled = result.untiled.peak_bytes
    grid.add_row("TFLite Micro's method", format_size(tflm_bytes), "greedy, model order")
    grid.add_row("memfit untiled", format_size(untiled), "")
    grid.add_row(
        "memfit tiled",
        format_size(chosen.peak_bytes),
        f"{untiled / peak:.2f}x less than untiled",
    )
    grid.add_row("", "", f"{tflm_bytes / peak:.2f}x less than TFLM's")
    grid.add_row(
        "MAC overhead", f"{result.mac_overhead:.2%}", f"{chosen.extra_macs:,} recomputed MACs"
    )
    predicted = chosen.predicted_latency_s
    base = result.untiled.predicted_latency_s
    grid.add_row(
        "predicted latency",
        f"{predicted * 1e3:.3f} ms",
        f"untiled {base * 1e3:.3f} ms ({predicted / base - 1:+.1%})" if base else "",
    )
    if "latency_s" in summary:
        measured, measured_base = summary["latency_s"], summary["untiled_latency_s"]
        grid.add_row(
            "measured latency (C)",
            f"{measured * 1e3:.3f} ms",
            f"untiled {measured_base * 1e3:.3f} ms ({measured / measured_base - 1:+.1%})",
        )
    if result.budget is not None:
        verdict = "fits" if result.fits_budget else "does NOT fit"
        grid.add_row("budget", format_size(result.budget), verdict)
    grid.add_row(
        "search", f"{result.search_seconds:.1f} s", f"{result.evaluations} plans evaluated"
    )
    for note in result.notes:
        grid.add_row("note", note, "")
    if output:
        grid.add_row("plan written to", output, "")
    console.print(grid)


REPORT_MAX_MAC_OVERHEAD = 0.2
"""Recompute the report's own plans may add (as a fraction of the model's MACs)."""


def cmd_report(args: argparse.Namespace) -> int:
    from memfit.codegen.cost_model import default_cost_model
    from memfit.codegen.plan import kernel_workspace
    from memfit.optimizer import SWEEP_FRACTIONS, sweep
    from memfit.planning import tflm_greedy
    from memfit.report.html import FrontPoint, collect, render

    out = Path(args.output)
    if out.suffix.lower() not in (".html", ".htm"):
        raise UsageError(f"-o {out}: expected an .html file name")
    graph = _load(args)
    as_imported = _load(args, canonical=False) if args.model.endswith(".tflite") else graph
    baseline = tflm_greedy(as_imported)  # TFLite Micro's kernels need no im2col workspace
    cost_model = default_cost_model()
    notes = []
    with _progress(f"reporting on {graph.name}") as report, kernel_workspace():
        # The front: memfit optimize without a budget (the smallest peak), then at budgets
        # below the untiled peak; without --plan, the smallest peak is the report's plan.
        front = []
        for fraction, budget, decision in sweep(
            graph, max_mac_overhead=REPORT_MAX_MAC_OVERHEAD, progress=report
        ):
            if fraction is None:
                smallest = decision
                untiled = (decision.untiled.graph, decision.untiled.plan)
                front.append(
                    FrontPoint(
                        None,
                        "untiled",
                        decision.untiled.peak_bytes,
                        decision.untiled.predicted_latency_s,
                    )
                )
            for candidate in decision.candidates:
                if candidate.source != "untiled":
                    front.append(
                        FrontPoint(
                            budget,
                            candidate.source,
                            candidate.peak_bytes,
                            candidate.predicted_latency_s,
                        )
                    )
        if args.plan:
            tiled, plan, rewrites = _apply_plan(graph, args.plan)
            notes.append(f"plan from {args.plan}")
        else:
            tiled, plan = smallest.chosen.graph, smallest.chosen.plan
            rewrites = list(smallest.chosen.rewrites)
            notes.append(
                "plan: memfit optimize --max-mac-overhead "
                f"{REPORT_MAX_MAC_OVERHEAD} (the smallest peak with at most "
                f"{REPORT_MAX_MAC_OVERHEAD:.0%} recomputed MACs)"
            )
        fractions = ", ".join(f"{f:.0%}" for f in SWEEP_FRACTIONS)
        notes.append(
            f"front: memfit optimize at budgets of {fractions} of the untiled peak and without "
            f"one, at most {REPORT_MAX_MAC_OVERHEAD:.0%} recomputed MACs"
        )
        if not cost_model.provenance.get("calibrated", True):
            notes.append("latencies predicted by an uncalibrated cost model")
        data = collect(graph, untiled, (tiled, plan), rewrites, baseline, cost_model, front, notes)
        page = render(data)
    _write_atomically(out, lambda tmp: Path(tmp).write_text(page))
    print(f"{out}: {len(page):,} bytes, self-contained (charts inline)")
    return 0


def _graph_and_plan(args: argparse.Namespace):  # type: ignore[no-untyped-def]
    """The model and its memory plan for generated C: the plan file's (checked against the
    model), else the one memfit makes (``memfit.codegen.plan``)."""
    from memfit.codegen.plan import plan_for_c, restore_for_c
    from memfit.planning.plan_file import fingerprint, read_plan

    graph = _load(args)
    if args.plan:
        document = read_plan(args.plan)
        return restore_for_c(graph, document, fingerprint(graph), f"plan {args.plan}")
    with _progress(f"planning memory of {graph.name} ({len(graph.ops)} ops)"):
        plan = plan_for_c(graph)
    return graph, plan


def _c_name(args: argparse.Namespace) -> str:
    from memfit.codegen.identifiers import c_identifier
    from memfit.frontends import ZOO_PREFIX

    if args.name:
        return c_identifier(args.name)
    model = str(args.model)
    return c_identifier(
        model[len(ZOO_PREFIX) :] if model.startswith(ZOO_PREFIX) else Path(model).stem
    )


def cmd_codegen(args: argparse.Namespace) -> int:
    import shutil

    from memfit.codegen.emit import generate

    out = Path(args.output)
    if out.exists():
        raise UsageError(f"{out} already exists; give a new directory (codegen never overwrites)")
    graph, plan = _graph_and_plan(args)
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}."))
    try:
        with _progress(f"writing C for {graph.name}"):
            model = generate(graph, plan, staging, _c_name(args))
        if out.exists():
            raise UsageError(f"{out} appeared while generating; nothing written")
        os.rename(staging, out)
    finally:
        if staging.exists():
            shutil.rmtree(staging)
    print(
        f"{out}/: {model.name}.h, {model.name}.c ({len(model.ops)} ops, "
        f"{len(model.no_ops)} without code), {model.name}_weights.c "
        f"({model.constant_bytes:,} bytes of constants), runtime, main.c, Makefile"
    )
    print(f"arena: {model.arena_bytes:,} bytes, static; build the example with `make -C {out}`")
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    import json

    from memfit.codegen.verify import verify

    if args.seeds < 1:
        raise UsageError(f"--seeds {args.seeds}: expected at least 1")
    graph, plan = _graph_and_plan(args)
    with _progress(f"generating, compiling and running C for {graph.name}"):
        result = verify(graph, plan, args.model, _c_name(args), seeds=range(args.seeds))
    if args.json:
        print(json.dumps(result.to_json(), indent=2))
    else:
        print(f"{args.model}: arena {result.arena_bytes:,} bytes, compiled with {result.compiler}")
        for comparison in result.comparisons:
            if result.integer_outputs:
                detail = "bit-exact" if comparison.bit_exact else "NOT bit-exact"
            else:
                detail = f"max abs diff {comparison.max_abs_diff:.3g}"
            verdict = "matches" if comparison.matches else "DIFFERS"
            print(f"  vs {comparison.against} ({comparison.note}): {verdict}, {detail}")
            for line in comparison.mismatches[:5]:
                print(f"    {line}")
        print(f"  no heap: {'yes' if result.no_heap else 'NO: ' + result.no_heap_message}")
    return 0 if result.matches else 1


def cmd_bench(args: argparse.Namespace) -> int:
    import json

    from memfit.codegen.bench import bench

    if args.runs < 1:
        raise UsageError(f"--runs {args.runs}: expected at least 1")
    graph, plan = _graph_and_plan(args)
    with _progress(f"timing the generated C of {graph.name}"):
        result = bench(graph, plan, args.model, _c_name(args), runs=args.runs)
    if args.json:
        print(json.dumps(result.to_json(), indent=2))
        return 0
    from rich.console import Console
    from rich.table import Table

    console = Console()
    table = Table("op", "kind", "median ms", "share", "MACs", title=f"{graph.name}: per op")
    total = sum(op.seconds for op in result.per_op) or 1.0
    for op in result.per_op:
        table.add_row(
            op.name, op.kind, f"{op.seconds * 1e3:.3f}", f"{op.seconds / total:.1%}", f"{op.macs:,}"
        )
    console.print(table)
    console.print(f"generated C ({result.compiler}): {result.latency_s * 1e3:.3f} ms median")
    if result.reference_latency_s is not None:
        console.print(
            f"{result.reference}: {result.reference_latency_s * 1e3:.3f} ms median, "
            f"{result.reference_latency_s / result.latency_s:.2f}x the generated C's"
        )
    return 0


def cmd_zoo(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.table import Table

    from memfit.zoo import ZOO

    table = Table("name", "what it is", title="built-in models (use as zoo:NAME)")
    for name, entry in ZOO.items():
        table.add_row(name, entry.description)
    Console().print(table)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="memfit",
        description="Fit DNN inference in tight memory, fast: plan, tile, verify and emit C.",
    )
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    def model_command(name: str, help_text: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_text, description=help_text)
        p.add_argument("model", help="a .tflite or .onnx file, or zoo:NAME")
        p.add_argument(
            "--input-shape",
            action="append",
            metavar="NAME=D1,D2,...",
            help="fix the shape of an input whose dimensions are unknown or dynamic",
        )
        return p

    p = model_command("run", "execute a model on inputs and write its outputs")
    p.add_argument("--input", required=True, help="X.npy (one input) or X.npz (by input name)")
    p.add_argument("--output", required=True, help="Y.npy (one output) or Y.npz")
    p.add_argument("--plan", metavar="PLAN.json", help="run inside this plan's arena")
    p.set_defaults(handler=cmd_run)

    p = model_command("inspect", "print the canonical graph: ops, shapes, dtypes, MACs")
    p.set_defaults(handler=cmd_inspect)

    p = model_command("analyze", "plan the arena and compare with TFLite Micro's planner")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--plot", metavar="FILE.png", help="write memory-over-time and layout charts")
    p.add_argument("--alignment", type=int, default=16, help="buffer alignment in bytes")
    p.add_argument("-o", "--output", metavar="PLAN.json", help="write the plan to a file")
    p.add_argument("--plan", metavar="PLAN.json", help="analyze this plan (e.g. a tiled one)")
    p.set_defaults(handler=cmd_analyze)

    p = model_command(
        "optimize",
        "tile the model (FDT, FFMT, MAFAT groups) and choose its convolution primitives for the "
        "smallest peak, or the fastest plan within a budget",
    )
    p.epilog = (
        "Without --budget the peak is minimized; with one, the first plan that fits is kept, "
        "preferring the least recomputed MACs. The arena includes the generated C kernels' "
        "workspace. Exit status: 0; 2 for a bad argument; 3 when no plan fits the budget "
        "(the best plan is written only with --best-effort)."
    )
    p.add_argument("--budget", metavar="SIZE", help="arena budget: 65536, 96KiB, 1.5MB, ...")
    p.add_argument(
        "--methods",
        default="fdt,ffmt,mafat,primitives",
        help="methods to weigh: tiling (fdt, ffmt, mafat) and primitive selection (primitives) "
        "(default: all)",
    )
    p.add_argument(
        "--max-mac-overhead",
        type=float,
        metavar="FRACTION",
        help="largest recomputed MACs as a fraction of the model's (0: no recompute)",
    )
    p.add_argument("-o", "--output", metavar="PLAN.json", help="write the plan to a file")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument(
        "--best-effort", action="store_true", help="write the best plan even if over budget"
    )
    p.add_argument(
        "--measure",
        action="store_true",
        help="time the chosen and the untiled plan's generated C side by side",
    )
    p.add_argument("--runs", type=int, default=5, help="timed runs per plan with --measure")
    p.add_argument("--name", help="C name prefix with --measure (default: the model's name)")
    p.set_defaults(handler=cmd_optimize)

    def c_command(name: str, help_text: str, epilog: str) -> argparse.ArgumentParser:
        p = model_command(name, help_text)
        p.epilog = epilog
        p.add_argument("--plan", metavar="PLAN.json", help="use this plan (default: memfit's own)")
        p.add_argument("--name", help="C name prefix (default: the model file's name)")
        return p

    p = c_command(
        "codegen",
        "write C99 sources for the model: one static arena, no malloc",
        "Exit status: 0, or 2 when DIR exists (nothing is written) or the plan does not fit.",
    )
    p.add_argument("-o", "--output", required=True, metavar="DIR", help="a new directory")
    p.set_defaults(handler=cmd_codegen)

    p = c_command(
        "verify",
        "compile the generated C, run it, compare with NumPy and the reference runtime",
        "Exit status: 0 when the outputs match (int8 bit-exact, float within 1e-4 of the "
        "largest reference value) and nothing uses the heap; 1 when they do not; 2 for no "
        "compiler, a compiler error or a bad argument.",
    )
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--seeds", type=int, default=3, help="number of random inputs (default 3)")
    p.set_defaults(handler=cmd_verify)

    p = c_command(
        "bench",
        "time the generated C beside TFLite Micro or onnxruntime, with a per-op breakdown",
        "Medians of --runs timed runs after a warm-up, alternating with the reference "
        "runtime. Exit status: 0, or 2 for no compiler, a compiler error or a bad argument.",
    )
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--runs", type=int, default=10, help="timed runs per side (default 10)")
    p.set_defaults(handler=cmd_bench)

    p = model_command("report", "write one self-contained HTML page about the model's plan")
    p.add_argument("--plan", metavar="PLAN.json", help="report on this plan (default: optimize)")
    p.add_argument("-o", "--output", required=True, metavar="REPORT.html")
    p.set_defaults(handler=cmd_report)

    p = sub.add_parser("zoo", help="list the built-in models")
    p.set_defaults(handler=cmd_zoo)

    from memfit.selection.command import add_pareto_parser

    add_pareto_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
        return int(args.handler(args))
    except MemfitError as exc:
        print(f"memfit: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except InternalError as exc:
        if os.environ.get("MEMFIT_DEBUG"):
            raise
        print(f"memfit: {exc}\n(set MEMFIT_DEBUG=1 for the traceback)", file=sys.stderr)
        return 1
    except BrokenPipeError:  # output piped into e.g. `head`, which stopped reading
        sys.stderr.close()
        return 0
    except KeyboardInterrupt:
        print("memfit: interrupted", file=sys.stderr)
        return 130
