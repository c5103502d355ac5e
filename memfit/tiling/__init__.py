"""Fused tiling: rewrite a chain of ops into explicit per-partition ops.

A rewrite is recorded as a small JSON-able dict so a plan file can replay it on the model:
``{"method": "ffmt", "ops": [...], "grid": [rows, cols]}`` or
``{"method": "fdt", "ops": [...], "partitions": P}``; primitive selection records
``{"method": "primitives", "ops": [...], "choices": {op: "primitive/layout"}, "nchw": [...]}``
(``memfit.selection.lowering.record``), replayed after the tiling it was chosen on. ``ops``
names the chain's ops in the graph the rewrite is applied to (after the rewrites before it).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from memfit.ir.core import Graph


@dataclass(frozen=True)
class TilingResult:
    """What one rewrite did: its record, and the MACs it adds by recomputing overlaps."""

    record: Mapping[str, Any]
    extra_macs: int


def describe_size(record: Mapping[str, Any]) -> str:
    """A rewrite's size in a few characters: ``P=4`` (FDT), ``3x2`` (FFMT grid) or the
    primitives chosen with their counts."""
    method = record.get("method")
    if method == "fdt":
        return f"P={record['partitions']}"
    if method == "primitives":
        from collections import Counter

        counts = Counter(record["choices"].values())
        return ", ".join(f"{label} x{n}" for label, n in sorted(counts.items()))
    return "x".join(map(str, record["grid"]))


def apply_rewrites(graph: Graph, records: Sequence[Mapping[str, Any]]) -> Graph:
    """Replay recorded rewrites on ``graph`` (in place) and return it."""
    from memfit.errors import InputError

    for record in records:
        method = record.get("method")
        if method == "ffmt":
            from memfit.tiling.ffmt import apply_ffmt

            apply_ffmt(graph, record["ops"], tuple(record["grid"]))
        elif method == "fdt":
            from memfit.tiling.fdt import apply_fdt

            apply_fdt(graph, record["ops"], int(record["partitions"]))
        elif method == "primitives":
            from memfit.selection.lowering import apply_record

            apply_record(graph, record)
        else:
            raise InputError(f"unknown rewrite method {method!r} in the plan; re-create it")
    return graph
