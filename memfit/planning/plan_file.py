"""Plan files: what ``memfit optimize``/``analyze -o`` decided, to run or compile later.

A plan file is JSON. It names the model it belongs to by a fingerprint of the canonical graph
(ops, shapes, dtypes, quantization and constant bytes), lists the graph rewrites to apply (tiling,
in order), the storage options (which byte sharing the plan uses) with the ops they run in
place, the op order and the offset of every arena buffer. Loading re-derives the storage map and
the buffers from the rewritten graph and runs the independent checker on the recorded offsets,
so a stale or edited plan is refused rather than trusted.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from memfit.errors import InputError, InternalError
from memfit.ir.core import Graph
from memfit.ir.printer import format_graph
from memfit.planning import (
    Assignment,
    MemoryPlan,
    Schedule,
    StorageOptions,
    SuiteResult,
    apply_schedule,
    assemble_plan,
    build_storage,
    check_assignment,
    compute_lifetimes,
    is_topological,
    lower_bound,
)

FORMAT = "memfit-plan"
VERSION = 1

LEGACY_STORAGE = StorageOptions.only("reshape_views")
"""What plan files without a "storage" entry were made with: reshape views only."""

Rewriter = Callable[[Graph, Sequence[Mapping[str, Any]]], Graph]
"""Applies a plan's recorded rewrites to a graph (registered by the tiling passes)."""


def fingerprint(graph: Graph) -> str:
    """A digest of the canonical graph: structure, types and every constant byte."""
    digest = hashlib.sha256(format_graph(graph).encode())
    for tensor in sorted(graph.constants(), key=lambda t: t.name):
        assert tensor.data is not None
        digest.update(tensor.name.encode())
        digest.update(tensor.data.tobytes())
    return digest.hexdigest()[:32]


def plan_to_json(
    graph: Graph,
    plan: MemoryPlan,
    model_fingerprint: str,
    rewrites: Sequence[Mapping[str, Any]] = (),
    summary: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    return {
        "format": FORMAT,
        "version": VERSION,
        "model": {"name": graph.name, "fingerprint": model_fingerprint},
        "summary": dict(summary or {}),
        "rewrites": [dict(r) for r in rewrites],
        "alignment": plan.arena.alignment,
        "arena_bytes": plan.arena.size,
        "storage": plan.storage.options.to_json(),
        "in_place": plan.storage.in_place_json(),
        "order": list(plan.schedule.order),
        "offsets": dict(plan.assignment.offsets),
    }


def save_plan(path: str | Path, document: Mapping[str, Any]) -> None:
    Path(path).write_text(json.dumps(document, indent=1) + "\n")


def read_plan(path: str | Path) -> dict[str, Any]:
    """Read and validate the outer structure of a plan file."""
    file = Path(path)
    if not file.is_file():
        raise InputError(f"plan file {path} does not exist")
    try:
        document = json.loads(file.read_text())
    except (ValueError, UnicodeDecodeError) as exc:
        raise InputError(f"plan file {path} is not valid JSON ({exc}); re-create it") from exc
    if not isinstance(document, dict) or document.get("format") != FORMAT:
        raise InputError(f"{path} is not a memfit plan file (written by `memfit optimize -o`)")
    if document.get("version") != VERSION:
        raise InputError(
            f"plan file {path} has version {document.get('version')}, this memfit reads "
            f"version {VERSION}; re-create the plan"
        )
    for key, kind in (("order", list), ("offsets", dict), ("rewrites", list), ("model", dict)):
        if not isinstance(document.get(key), kind):
            raise InputError(f"plan file {path} is malformed: '{key}' is missing or wrong")
    return document


def restore_plan(
    graph: Graph,
    document: Mapping[str, Any],
    model_fingerprint: str,
    rewrite: Rewriter | None = None,
    source: str = "the plan",
) -> tuple[Graph, MemoryPlan]:
    """Apply a plan file to the canonical ``graph`` it was made for; returns the rewritten
    graph (ops in the plan's order) and its checked MemoryPlan."""
    recorded = document["model"].get("fingerprint")
    if recorded != model_fingerprint:
        raise InputError(
            f"{source} was made for model {document['model'].get('name')!r} "
            f"(fingerprint {recorded}), not for {graph.name!r} (fingerprint {model_fingerprint}); "
            "re-create the plan for this model with `memfit optimize`"
        )
    if document["rewrites"]:
        if rewrite is None:
            raise InputError(f"{source} contains rewrites this memfit cannot apply")
        graph = rewrite(graph.copy(), document["rewrites"])
    order = tuple(document["order"])
    if not is_topological(graph, order):
        raise InputError(f"{source} has an op order that does not fit the model; re-create it")
    apply_schedule(graph, order)
    alignment = int(document.get("alignment", 16))
    storage = build_storage(graph, _storage_options(document, source))
    recorded_in_place = document.get("in_place")
    if recorded_in_place is not None and recorded_in_place != storage.in_place_json():
        raise InputError(
            f"{source} runs other ops in place than this memfit would for the model; "
            "re-create the plan"
        )
    lifetimes = compute_lifetimes(graph, order, storage=storage)
    offsets = {str(k): int(v) for k, v in document["offsets"].items()}
    size = int(document.get("arena_bytes", 0))
    assignment = Assignment(offsets, size, "plan file")
    try:
        check_assignment(lifetimes.buffers, assignment, alignment)
    except InternalError as exc:
        raise InputError(f"{source} does not hold for this model: {exc}") from exc
    bound = lower_bound(lifetimes, alignment)
    schedule = Schedule(order, bound, bound, "plan file", optimal=False)
    suite = SuiteResult(assignment, (assignment,), bound)
    return graph, assemble_plan(graph, schedule, lifetimes, suite, alignment)


def _storage_options(document: Mapping[str, Any], source: str) -> StorageOptions:
    recorded = document.get("storage")
    if recorded is None:
        return LEGACY_STORAGE
    try:
        if not isinstance(recorded, dict):
            raise ValueError("not an object")
        return StorageOptions.from_json(recorded)
    except ValueError as exc:
        raise InputError(f"{source} has malformed storage options ({exc}); re-create it") from exc
