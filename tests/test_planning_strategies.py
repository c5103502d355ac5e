"""Hypothesis strategies and brute-force references shared by the planning tests (no tests here)."""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Sequence

from hypothesis import strategies as st

from memfit.ir.core import Graph
from memfit.ir.dtypes import DType
from memfit.planning.assignment import FirstFit
from memfit.planning.lifetimes import Buffer, compute_lifetimes, lower_bound


@st.composite
def buffer_lists(draw: st.DrawFn, max_buffers: int = 12, max_step: int = 10) -> list[Buffer]:
    """Random buffers: sizes not multiples of any alignment, zero sizes included."""
    count = draw(st.integers(1, max_buffers))
    buffers = []
    for i in range(count):
        first = draw(st.integers(0, max_step))
        length = draw(st.integers(0, 4))
        size = draw(st.integers(0, 300))
        buffers.append(Buffer(f"b{i}", size, first, first + length))
    return buffers


def brute_force_arena(buffers: Sequence[Buffer], alignment: int) -> int:
    """The optimal arena size: first fit in the best of all placement orders.

    First fit in order of the optimal offsets puts every buffer at or below its optimal offset,
    so the minimum over all orders is the optimum. Only for a handful of buffers.
    """
    packer = FirstFit(buffers, alignment)
    return min(packer.place(order)[1] for order in itertools.permutations(range(len(buffers))))


@st.composite
def random_dags(draw: st.DrawFn, max_ops: int = 8) -> Graph:
    """A random graph of float tensors with branches, joins, reshapes and unread outputs.

    Op kinds are nominal (planning only reads kinds to find reshapes); shapes are 1-D.
    """
    graph = Graph("random")
    inputs = [
        graph.add_tensor(f"in{i}", (draw(st.integers(1, 64)),), DType.FLOAT32)
        for i in range(draw(st.integers(1, 2)))
    ]
    graph.inputs.extend(inputs)
    tensors = list(inputs)
    for i in range(draw(st.integers(1, max_ops))):
        kind = draw(st.sampled_from(["add", "concat", "relu", "reshape"]))
        arity = 2 if kind in ("add", "concat") else 1
        sources = [draw(st.sampled_from(tensors)) for _ in range(arity)]
        # a reshape keeps the byte size, so that it becomes a view
        shape = (1, sources[0].shape[0]) if kind == "reshape" else (draw(st.integers(1, 64)),)
        out = graph.add_tensor(f"t{i}", shape, DType.FLOAT32)
        graph.add_op(kind, sources, [out], name=f"op{i}")
        tensors.append(out)
    unread = [t for t in tensors[len(inputs) :] if not t.consumers]
    graph.outputs.extend(unread or [tensors[-1]])
    extra = draw(st.sampled_from(tensors))
    if extra not in graph.outputs:
        graph.outputs.append(extra)
    return graph


def topological_orders(graph: Graph) -> Iterator[tuple[str, ...]]:
    """Every topological order of the graph's ops (exponentially many: tiny graphs only)."""
    preds = {
        op.name: {t.producer.name for t in op.activation_inputs if t.producer is not None}
        for op in graph.ops
    }

    def extend(done: tuple[str, ...]) -> Iterator[tuple[str, ...]]:
        if len(done) == len(preds):
            yield done
            return
        for name in preds:
            if name not in done and preds[name] <= set(done):
                yield from extend((*done, name))

    yield from extend(())


def best_peak(graph: Graph, alignment: int) -> int:
    """The lowest lower bound over every topological order."""
    return min(
        lower_bound(compute_lifetimes(graph, order), alignment)
        for order in topological_orders(graph)
    )
