"""Remove the transposes that are not real data movement.

The ONNX frontend wraps layout-dependent ops in NHWC <-> NCHW transposes; this pass removes all
that it can, applying these rules until none applies (each one removes a transpose or a
reshape, so it terminates):

- a transpose with the identity permutation goes; a transpose of a constant is folded into it;
- two transposes in a row become one (inverse pairs cancel through the identity rule);
- a transpose that only moves axes of size 1 is a reshape; two reshapes in a row become one,
  and a reshape to the same shape goes;
- ``transpose -> reshape -> transpose``, where the reshape only splits or merges axes, becomes
  one transpose and one reshape: the first transpose moves below the reshape or the second one
  above it, and the two meet (ShuffleNet's channel shuffle keeps one transpose, not three);
- ``transpose -> reshape (flatten) -> fully_connected`` folds the permutation into the columns
  of the dense layer's weights (flattening NCHW data for an NHWC graph costs nothing at run
  time).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Sequence

import numpy as np

from memfit.ir.core import Graph, Op, Tensor
from memfit.passes.manager import PassResult, register_pass
from memfit.passes.rewrite import bypass, replace_op, sole_reader, with_data

Perm = tuple[int, ...]
Group = tuple[tuple[int, ...], tuple[int, ...]]


def compose(first: Sequence[int], then: Sequence[int]) -> Perm:
    """The permutation equal to transposing by ``first`` and then by ``then``."""
    return tuple(first[i] for i in then)


def is_trivial(shape: Sequence[int], perm: Sequence[int]) -> bool:
    """True when the transpose keeps the order of all axes longer than 1 (a pure reshape)."""
    moved = [p for p in perm if shape[p] != 1]
    return moved == sorted(moved)


def reshape_groups(source: Sequence[int], target: Sequence[int]) -> list[Group] | None:
    """Split a reshape into groups of consecutive source axes <-> consecutive target axes.

    Each group holds axes whose sizes multiply to the same number; an axis of size 1 on its own
    forms a group with nothing on the other side. None if the sizes do not match.
    """
    groups: list[Group] = []
    i = j = 0
    while i < len(source) or j < len(target):
        if i < len(source) and source[i] == 1:
            groups.append(((i,), ()))
            i += 1
            continue
        if j < len(target) and target[j] == 1:
            groups.append(((), (j,)))
            j += 1
            continue
        if i >= len(source) or j >= len(target):
            return None
        src, dst = [i], [j]
        size_src, size_dst = source[i], target[j]
        i, j = i + 1, j + 1
        while size_src != size_dst:
            if size_src < size_dst and i < len(source):
                src.append(i)
                size_src *= source[i]
                i += 1
            elif size_dst < size_src and j < len(target):
                dst.append(j)
                size_dst *= target[j]
                j += 1
            else:
                return None
        groups.append((tuple(src), tuple(dst)))
    return groups


def _runs_in_order(positions: Sequence[int]) -> bool:
    return all(b == a + 1 for a, b in itertools.pairwise(positions))


def _layout_order(starts: Sequence[int | None]) -> list[int]:
    """Group indices sorted by start position; a group without one (an axis of size 1 that
    exists on one side only) stays right after the group before it."""
    keys: list[tuple[int, int]] = []
    previous = -1
    for index, start in enumerate(starts):
        previous = previous if start is None else start
        keys.append((previous, index))
    return sorted(range(len(starts)), key=lambda g: keys[g])


def sink_transpose(
    x_shape: Sequence[int], perm: Sequence[int], target: Sequence[int]
) -> tuple[tuple[int, ...], Perm] | None:
    """Rewrite ``x.transpose(perm).reshape(target)`` as ``x.reshape(shape).transpose(q)``.

    Returns (shape, q), or None when the reshape merges axes that the transpose reorders.
    """
    transposed = [x_shape[p] for p in perm]
    groups = reshape_groups(transposed, target)
    if groups is None:
        return None
    x_axes = [[perm[a] for a in src] for src, _ in groups]
    if not all(_runs_in_order(axes) for axes in x_axes):
        return None
    order = _layout_order([axes[0] if axes else None for axes in x_axes])
    shape: list[int] = []
    position: dict[int, list[int]] = {}
    for g in order:
        position[g] = list(range(len(shape), len(shape) + len(groups[g][1])))
        shape.extend(target[t] for t in groups[g][1])
    q = tuple(p for g in range(len(groups)) for p in position[g])
    return tuple(shape), q


def hoist_transpose(
    source: Sequence[int], target: Sequence[int], perm: Sequence[int]
) -> tuple[Perm, tuple[int, ...]] | None:
    """Rewrite ``x.reshape(target).transpose(perm)`` as ``x.transpose(p).reshape(shape)``.

    ``source`` is x's shape. Returns (p, shape), or None when the transpose separates axes that
    the reshape split from one axis.
    """
    groups = reshape_groups(source, target)
    if groups is None:
        return None
    where = {t: k for k, t in enumerate(perm)}  # target axis -> position after the transpose
    spots = [[where[t] for t in dst] for _, dst in groups]
    if not all(_runs_in_order(s) for s in spots):
        return None
    order = _layout_order([s[0] if s else None for s in spots])
    p = tuple(a for g in order for a in groups[g][0])
    return p, tuple(target[t] for t in perm)


def flatten_permutation(x_shape: Sequence[int], perm: Sequence[int]) -> np.ndarray:
    """Index map of flattening ``x.transpose(perm)`` per batch item: position k of the
    transposed flat vector holds element ``index[k]`` of x's flat vector (axis 0 fixed)."""
    inner = [p - 1 for p in perm[1:]]
    return np.arange(math.prod(x_shape[1:])).reshape(x_shape[1:]).transpose(inner).reshape(-1)


def moves_data_only(op: Op) -> bool:
    """True for a transpose or reshape whose output has its input's dtype and quantization.

    Only those may be merged, cancelled or moved: another one also requantizes.
    """
    if op.kind not in ("transpose", "reshape"):
        return True
    x = op.inputs[0]
    return x is not None and x.dtype is op.output.dtype and x.quant == op.output.quant


class _Rewriter:
    def __init__(self, graph: Graph) -> None:
        self.graph = graph

    def new_tensor(self, like: Tensor, shape: Sequence[int]) -> Tensor:
        return self.graph.add_tensor(
            self.graph.unique_name(f"{like.name}_r"), shape, like.dtype, like.quant
        )

    # Each rule returns True if it changed the graph.
    def identity_or_constant(self, op: Op) -> bool:
        x = op.inputs[0]
        assert x is not None
        perm = tuple(op.attrs["perm"])
        if perm == tuple(range(len(perm))):
            return bypass(self.graph, op)
        if x.is_constant and op.output not in self.graph.outputs:
            self.graph.remove_op(op)
            op.output.data = np.ascontiguousarray(x.data.transpose(perm))  # type: ignore[union-attr]
            return True
        return False

    def merge_transposes(self, op: Op) -> bool:
        first = op.inputs[0].producer  # type: ignore[union-attr]
        if first is None or first.kind != "transpose" or not moves_data_only(first):
            return False
        perm = compose(first.attrs["perm"], op.attrs["perm"])
        replace_op(self.graph, op, inputs=[first.inputs[0]], attrs={"perm": perm})
        return True

    def trivial_to_reshape(self, op: Op) -> bool:
        if not is_trivial(op.inputs[0].shape, op.attrs["perm"]):  # type: ignore[union-attr]
            return False
        replace_op(self.graph, op, kind="reshape", attrs={})
        return True

    def merge_reshapes(self, op: Op) -> bool:
        x = op.inputs[0]
        assert x is not None
        if x.shape == op.output.shape:
            return bypass(self.graph, op)
        first = x.producer
        if first is None or first.kind != "reshape" or not moves_data_only(first):
            return False
        replace_op(self.graph, op, inputs=[first.inputs[0]], attrs={})
        return True

    def meet_across_reshape(self, second: Op) -> bool:
        """transpose -> reshape -> transpose (``second``) => one transpose and one reshape."""
        reshape = self._sole_producer(second, "reshape")
        first = self._sole_producer(reshape, "transpose") if reshape else None
        if reshape is None or first is None:
            return False
        x = first.inputs[0]
        assert x is not None
        sunk = sink_transpose(x.shape, first.attrs["perm"], reshape.output.shape)
        if sunk is not None:
            shape, q = sunk
            chain = [
                ("reshape", reshape, {}, self.new_tensor(reshape.output, shape)),
                ("transpose", second, {"perm": compose(q, second.attrs["perm"])}, second.output),
            ]
        else:
            source = reshape.inputs[0]
            assert source is not None
            hoisted = hoist_transpose(source.shape, reshape.output.shape, second.attrs["perm"])
            if hoisted is None:
                return False
            p, _ = hoisted
            perm = compose(first.attrs["perm"], p)
            middle = self.new_tensor(first.output, [x.shape[a] for a in perm])
            chain = [
                ("transpose", first, {"perm": perm}, middle),
                ("reshape", reshape, {}, second.output),
            ]
        for old in (first, reshape):
            self.graph.remove_op(old)
        index = self.graph.ops.index(second)
        self.graph.remove_op(second)
        source = x
        for offset, (kind, named_after, attrs, out) in enumerate(chain):
            self.graph.add_op(
                kind, [source], [out], attrs, name=named_after.name, index=index + offset
            )
            source = out
        return True

    def into_fully_connected(self, op: Op) -> bool:
        """transpose -> reshape [B, K] -> fully_connected: permute the weight columns."""
        reshape = sole_reader(self.graph, op.output)
        if reshape is None or reshape.kind != "reshape" or not moves_data_only(reshape):
            return False
        dense = sole_reader(self.graph, reshape.output)
        x, perm = op.inputs[0], tuple(op.attrs["perm"])
        assert x is not None
        flat = reshape.output.shape
        if dense is None or dense.kind != "fully_connected":
            return False
        if dense.inputs[0] is not reshape.output:
            return False
        if perm[0] != 0 or len(flat) != 2 or flat[0] != x.shape[0]:
            return False
        weights = dense.inputs[1]
        if weights is None or weights.data is None:
            return False
        if weights.quant is not None and weights.quant.axis not in (None, 0):
            return False  # per-column scales would have to move with the columns
        columns = np.empty_like(weights.data)
        columns[:, flatten_permutation(x.shape, perm)] = weights.data
        self.graph.set_input(dense, 1, with_data(self.graph, dense, weights, columns))
        self.graph.set_input(reshape, 0, x)
        self.graph.remove_op(op)
        return True

    def _sole_producer(self, op: Op, kind: str) -> Op | None:
        x = op.inputs[0]
        producer = x.producer if x is not None else None
        if producer is None or producer.kind != kind or sole_reader(self.graph, x) is not op:  # type: ignore[arg-type]
            return None
        return producer if moves_data_only(producer) else None


@register_pass("fold-transposes")
def fold_transposes(graph: Graph) -> PassResult:
    rewriter = _Rewriter(graph)
    rules: dict[str, tuple[Callable[[Op], bool], ...]] = {
        "transpose": (
            rewriter.identity_or_constant,
            rewriter.merge_transposes,
            rewriter.trivial_to_reshape,
            rewriter.meet_across_reshape,
            rewriter.into_fully_connected,
        ),
        "reshape": (rewriter.merge_reshapes,),
    }
    changes = 0
    changed = True
    while changed:
        changed = False
        for op in list(graph.ops):
            if op not in graph.ops or not moves_data_only(op):
                continue  # removed by an earlier rewrite in this sweep, or requantizes
            for rule in rules.get(op.kind, ()):
                if rule(op):
                    changes += 1
                    changed = True
                    graph.prune()
                    break
    return PassResult(graph, changes > 0)
