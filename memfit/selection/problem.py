"""A model's primitive-selection problem: its selectable layers with their measured costs,
the tensors that may stay NCHW between them, and the activation arena memfit plans for it."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import replace

from memfit.codegen.plan import C_STORAGE
from memfit.codegen.views import tensor_view
from memfit.ir.core import Graph
from memfit.planning import MemoryPlan, StorageOptions, plan_memory_quickly
from memfit.planning.arena import align_up
from memfit.planning.scratch import without_workspace
from memfit.selection import primitives
from memfit.selection.ilp import Layer, Link, Option, Problem
from memfit.selection.lowering import pixel_rows
from memfit.selection.pareto import DEFAULT
from memfit.selection.profile import LayerCosts


def activation_plan(
    graph: Graph, storage: StorageOptions = C_STORAGE, *, reorder: bool = True
) -> MemoryPlan:
    """The plan memfit makes for ``graph``'s activations alone (no kernel workspace, even
    inside ``kernel_workspace``; ``reorder``: whether it may choose the op order)."""
    with without_workspace():
        return plan_memory_quickly(graph.copy(), storage=storage, reorder=reorder)


def links(graph: Graph, selectable: set[str], plan: MemoryPlan | None = None) -> tuple[Link, ...]:
    """Tensors one selectable layer writes and only selectable layers read (as their input),
    stored densely and not a model output: they may stay NCHW (``plan``: the graph's
    ``activation_plan``, made when not given)."""
    plan = plan or activation_plan(graph)
    outputs = {t.name for t in graph.outputs}
    found = []
    for op in graph.ops:
        if op.name not in selectable:
            continue
        t = op.output
        consumers = t.consumers
        placement = plan.arena.placements.get(t.name)
        if (
            t.name in outputs
            or not consumers
            or placement is None
            or placement.strides is not None
            or plan.storage.moves_no_data(op.name)
            or any(c.name not in selectable or c.inputs[0] is not t for c in consumers)
        ):
            continue
        found.append(Link(t.name, op.name, tuple(c.name for c in consumers)))
    return tuple(found)


def step_bytes(plan: MemoryPlan, names: Iterable[str]) -> dict[str, int]:
    """Op name -> the activation bytes (each buffer aligned as ``plan`` places it) live while
    it runs in ``plan``'s op order."""
    lifetimes, alignment = plan.lifetimes, plan.arena.alignment
    step = {name: i for i, name in enumerate(lifetimes.order)}
    return {
        name: sum(align_up(b.size, alignment) for b in lifetimes.live_at(step[name]))
        for name in names
    }


def _step_bytes_of_any_choice(graph: Graph, costs: Mapping[str, LayerCosts]) -> dict[str, int]:
    layers = frozenset(costs)
    plan = activation_plan(graph, replace(C_STORAGE, not_in_place=layers), reorder=False)
    return step_bytes(plan, (op.name for op in graph.ops if op.name in layers))


def build_problem(
    graph: Graph,
    costs: Mapping[str, LayerCosts],
    other_seconds: float = 0.0,
    plan: MemoryPlan | None = None,
    *,
    per_step: bool = False,
) -> Problem:
    """The problem of ``graph`` (``plan``: its ``activation_plan``, made when not given).
    With ``per_step``, a layer's workspace counts beside the activations live while it runs
    (``step_bytes``) rather than on top of the whole arena (TASO's model); those bytes come
    from a plan where no selectable layer runs in place, as a layer running a chosen primitive
    cannot (a 1x1 convolution writing over its input keeps its larger output live from the
    step before: that step's bytes would hold only for memfit's own kernel)."""
    plan = plan or activation_plan(graph)
    layers = []
    for op in graph.ops:
        cost = costs.get(op.name)
        if cost is None:
            continue
        x = op.inputs[0]
        assert x is not None
        seconds = dict(cost.seconds)
        if not all(pixel_rows(tensor_view(t, plan.arena)) for t in (x, op.output)):
            # a window of a wider tensor: only memfit's own kernel reads and writes it
            seconds = {c: s for c, s in seconds.items() if c == DEFAULT}
        layers.append(
            Layer(
                op.name,
                {c: Option(s, primitives.workspace_bytes(op, c)) for c, s in seconds.items()},
                Option(cost.to_nchw_input, primitives.conversion_bytes(x)),
                Option(cost.to_nhwc_output, primitives.conversion_bytes(op.output)),
            )
        )
    return Problem(
        tuple(layers),
        links(graph, set(costs), plan),
        plan.arena.size,
        other_seconds,
        _step_bytes_of_any_choice(graph, costs) if per_step else {},
    )
