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
    """The graph rewritten as the plan file says, with its checked memory plan."""
    from memfit.planning.plan_file import fingerprint, read_plan, restore_plan

    document = read_plan(path)
    return restore_plan(graph, document, fingerprint(graph), source=f"plan {path}")


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
        graph, memory_plan = _apply_plan(graph, args.plan)
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


def _status(message: str, quiet: bool = False):  # type: ignore[no-untyped-def]
    """A spinner on stderr for work that may take more than a second."""
    import contextlib

    from rich.console import Console

    console = Console(stderr=True)
    if quiet or not console.is_terminal:
        return contextlib.nullcontext()
    return console.status(message)


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
    with _status(f"planning memory of {graph.name} ({len(graph.ops)} ops)"):
        analysis = analyze_memory(graph, args.alignment, as_imported=as_imported)
    if args.output:
        document = plan_to_json(graph, analysis.plan, model_fingerprint)
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
    parser = _Parser(prog="memfit", description=__doc__)
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
    p.set_defaults(handler=cmd_analyze)

    p = sub.add_parser("zoo", help="list the built-in models")
    p.set_defaults(handler=cmd_zoo)
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
