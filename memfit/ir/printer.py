"""Readable text for graphs, for golden tests, bug reports and ``memfit inspect``."""

from __future__ import annotations

from typing import Any

from memfit.ir.core import Graph, Op, Tensor
from memfit.ir.ops import macs


def format_type(t: Tensor) -> str:
    text = f"{t.dtype}[{','.join(map(str, t.shape))}]"
    if t.quant is not None:
        text += f" {t.quant}"
    return text


def _operand(t: Tensor | None) -> str:
    if t is None:
        return "_"
    if t.is_constant:
        return f"@{t.name}:{t.dtype}[{','.join(map(str, t.shape))}]"
    return f"%{t.name}"


def _attr(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, tuple | list):
        return "(" + ", ".join(_attr(v) for v in value) + ")"
    return str(value)


def format_op(op: Op, with_macs: bool = False) -> str:
    outs = ", ".join(f"%{t.name}: {format_type(t)}" for t in op.outputs)
    args = ", ".join(_operand(t) for t in op.inputs)
    attrs = ", ".join(f"{k}={_attr(v)}" for k, v in sorted(op.attrs.items()))
    text = f"{outs} = {op.kind}({args})"
    if attrs:
        text += f" {{{attrs}}}"
    if with_macs:
        text += f"  # macs={macs(op):,}"
    return text


def format_graph(graph: Graph, with_macs: bool = False) -> str:
    """The whole graph, one op per line, in execution order."""
    ins = ", ".join(f"%{t.name}: {format_type(t)}" for t in graph.inputs)
    outs = ", ".join(f"%{t.name}" for t in graph.outputs)
    lines = [f"graph {graph.name}({ins}) -> ({outs}) {{"]
    lines += [f"  {format_op(op, with_macs)}" for op in graph.ops]
    lines.append("}")
    return "\n".join(lines) + "\n"
