"""Memory plans that generated C can run.

Two things set a plan for C apart from one for the NumPy executor:

- the kernels' workspace (``memfit.codegen.params.workspace_bytes``: the im2col panel of a
  convolution) must be in the arena, as scratch of the op that uses it; the planner adds
  scratch for the kinds registered in ``memfit.planning.scratch``, so planning for C runs with
  the kernels' workspace registered there (and only then: the NumPy executor needs none);
- only the byte sharing the runtime has kernels for may be used (``C_STORAGE``: all of it).

A plan file is checked against the model with the workspace registered too, so a plan made
without it (``memfit analyze -o``) is refused with the reason rather than run out of bounds.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from typing import Any

from memfit.codegen import params
from memfit.ir.core import Graph
from memfit.ir.ops import SUPPORTED_KINDS
from memfit.planning import MemoryPlan, StorageOptions, plan_memory
from memfit.planning.scratch import SCRATCH

C_STORAGE = StorageOptions()
"""Every kind of byte sharing the planner knows: the runtime has a kernel for each."""


@contextlib.contextmanager
def kernel_workspace() -> Iterator[None]:
    """Within the block, the planner gives every op the workspace its C kernel needs."""
    saved = dict(SCRATCH)
    for kind in SUPPORTED_KINDS:
        SCRATCH[kind] = params.workspace_bytes
    try:
        yield
    finally:
        SCRATCH.clear()
        SCRATCH.update(saved)


def plan_for_c(graph: Graph, **options: Any) -> MemoryPlan:
    """``plan_memory`` with the C kernels' workspace and the sharing C can run (the graph's
    ops are put in the plan's order, as ``plan_memory`` does). A layer that runs a primitive
    chosen by ``memfit.selection`` has no in-place form: the storage rules leave it out."""
    with kernel_workspace():
        return plan_memory(graph, storage=C_STORAGE, **options)


def restore_for_c(
    graph: Graph, document: Mapping[str, Any], model_fingerprint: str, source: str
) -> tuple[Graph, MemoryPlan]:
    """``restore_plan`` checked with the C kernels' workspace: a plan without it is refused."""
    from memfit.errors import InputError
    from memfit.planning.plan_file import restore_plan
    from memfit.tiling import apply_rewrites

    def restore() -> tuple[Graph, MemoryPlan]:
        return restore_plan(graph, document, model_fingerprint, apply_rewrites, source=source)

    try:
        with kernel_workspace():
            return restore()
    except InputError:
        try:
            restore()
        except InputError:
            raise  # wrong for the model whatever the workspace: say why
        raise InputError(
            f"{source} was made without the workspace of memfit's C kernels (the convolutions' "
            "im2col panels need arena bytes of their own); generate code without --plan, or "
            "from a plan made for code generation"
        ) from None


def restore_any(
    graph: Graph, document: Mapping[str, Any], model_fingerprint: str, source: str
) -> tuple[Graph, MemoryPlan]:
    """A plan file made for C (``memfit optimize``, with the kernels' workspace) or for the
    NumPy executor alone (``memfit analyze -o``), restored and checked as it was made."""
    from memfit.errors import InputError
    from memfit.planning.plan_file import restore_plan
    from memfit.tiling import apply_rewrites

    try:
        with kernel_workspace():
            return restore_plan(graph, document, model_fingerprint, apply_rewrites, source=source)
    except InputError:
        return restore_plan(graph, document, model_fingerprint, apply_rewrites, source=source)
