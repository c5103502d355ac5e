"""Generated C for a layer that runs a chosen primitive (``memfit.codegen`` calls in here for
a conv2d op carrying a ``primitive`` attribute; without one, its own kernel runs).

``configure`` copies a graph and marks each selected conv2d with its choice:

- ``primitive`` and ``layout``: the function of ``mf_primitives.h`` that runs it;
- ``input_nchw`` / ``output_nchw``: the tensor is stored NCHW in the arena (kept between two
  NCHW layers), so no conversion. A layer running NCHW whose input (output) is stored NHWC
  converts it into (out of) a buffer in its scratch.

The op's scratch is [primitive workspace][input converted to NCHW][output in NCHW], each part
present only when needed; ``workspace_bytes`` is its size, which the planner reserves and the
emitter checks.
"""

from __future__ import annotations

from collections.abc import Mapping

from memfit.codegen import params
from memfit.codegen.lowering import OpContext, unsupported
from memfit.codegen.views import View
from memfit.errors import InternalError
from memfit.ir.core import Graph, Op, Tensor
from memfit.ir.dtypes import DType
from memfit.selection import primitives
from memfit.selection.primitives import NCHW, Choice

PRIMITIVE, LAYOUT, INPUT_NCHW, OUTPUT_NCHW = "primitive", "layout", "input_nchw", "output_nchw"


def choice_of(op: Op) -> Choice | None:
    name = op.attrs.get(PRIMITIVE)
    return None if name is None else Choice(name, op.attrs[LAYOUT])


def configure(
    graph: Graph, assignment: Mapping[str, Choice], nchw_tensors: frozenset[str] = frozenset()
) -> Graph:
    """A copy of ``graph`` whose layers run the assigned choices (``default`` choices are left
    unmarked: memfit's own kernel runs them)."""
    configured = graph.copy()
    mark(configured, assignment, nchw_tensors)
    return configured


def mark(
    graph: Graph, assignment: Mapping[str, Choice], nchw_tensors: frozenset[str] = frozenset()
) -> None:
    """Mark ``graph``'s layers (in place) with the assigned choices."""
    for name, choice in assignment.items():
        if choice.primitive == "default":
            continue
        op = graph.op(name)
        if choice not in primitives.choices(op):
            raise InternalError(f"op {name}: {choice.label} does not apply")
        x = op.inputs[0]
        assert x is not None
        op.attrs[PRIMITIVE] = choice.primitive
        op.attrs[LAYOUT] = choice.layout
        op.attrs[INPUT_NCHW] = x.name in nchw_tensors
        op.attrs[OUTPUT_NCHW] = op.output.name in nchw_tensors


def record(
    assignment: Mapping[str, Choice], nchw_tensors: frozenset[str], delta_seconds: float
) -> dict[str, object]:
    """The plan-file record of a selection (the layers that do not run memfit's own kernel),
    which ``apply_record`` replays; ``predicted_delta_s`` is the predicted change of latency."""
    chosen = {n: c for n, c in sorted(assignment.items()) if c.primitive != "default"}
    return {
        "method": "primitives",
        "ops": list(chosen),
        "choices": {n: c.label for n, c in chosen.items()},
        "nchw": sorted(nchw_tensors),
        "predicted_delta_s": delta_seconds,
    }


def parse_record(entry: Mapping[str, object]) -> tuple[dict[str, Choice], frozenset[str]]:
    """The assignment and NCHW tensors of a selection record (``record``)."""
    from memfit.errors import InputError

    labels = entry.get("choices")
    nchw = entry.get("nchw", [])
    if not isinstance(labels, Mapping) or not isinstance(nchw, list):
        raise InputError("a primitive-selection record in the plan is malformed; re-create it")
    assignment = {}
    for name, label in labels.items():
        primitive, _, layout = str(label).partition("/")
        assignment[str(name)] = Choice(primitive, layout)
    return assignment, frozenset(str(t) for t in nchw)


def apply_record(graph: Graph, entry: Mapping[str, object]) -> None:
    """Replay a selection record on ``graph`` (in place)."""
    from memfit.errors import InputError

    assignment, nchw = parse_record(entry)
    names = {op.name for op in graph.ops}
    missing = sorted(set(assignment) - names)
    if missing:
        raise InputError(
            f"the plan selects primitives for ops the model does not have ({', '.join(missing)});"
            " it was made for another model or version: re-create it"
        )
    for name, choice in assignment.items():
        if choice not in primitives.choices(graph.op(name)):
            raise InputError(
                f"the plan runs op {name} with {choice.label}, which does not apply to it; "
                "re-create the plan"
            )
    mark(graph, assignment, nchw)


def _parts(op: Op) -> tuple[int, int, int]:
    """Bytes of the primitive's workspace, the input conversion and the output conversion."""
    choice = choice_of(op)
    if choice is None:
        raise InternalError(f"op {op.name} has no primitive")
    x = op.inputs[0]
    assert x is not None
    converting = choice.layout == NCHW
    input_bytes = primitives.conversion_bytes(x)
    output_bytes = primitives.conversion_bytes(op.output)
    return (
        primitives.workspace_bytes(op, choice),
        input_bytes if converting and not op.attrs[INPUT_NCHW] else 0,
        output_bytes if converting and not op.attrs[OUTPUT_NCHW] else 0,
    )


def workspace_bytes(op: Op) -> int:
    """Scratch bytes of a conv2d running a chosen primitive, with its conversion buffers."""
    return sum(_parts(op))


def pixel_rows(view: View) -> bool:
    """Is ``view`` whole rows of NHWC pixels, one pixel stride apart (what the primitives read
    and write)? A window of a wider tensor (a 2-D tile's slice view or concat slot) is not."""
    n, h, w, c = view.dims
    sn, sh, sw = view.strides
    return sw >= c and sh == w * sw and (n == 1 or sn == h * sh)


def _pixel_stride(context: OpContext, tensor: Tensor) -> int:
    """Elements between consecutive NHWC pixels (the tensor must be rows of pixels)."""
    view = context.view(tensor)
    if not pixel_rows(view):
        raise unsupported(
            context.op, context.graph, f"{tensor.name} is not a box of whole pixel rows"
        )
    return view.strides[2]


def lower(context: OpContext) -> list[str]:
    """The C statements of a conv2d op running its chosen primitive."""
    op = context.op
    choice = choice_of(op)
    assert choice is not None
    x, bias = op.inputs[0], op.input(2)
    assert x is not None
    y = op.output
    g = primitives.geometry(op)
    nchw = choice.layout == NCHW
    x_stride = g.c if nchw else _pixel_stride(context, x)
    y_stride = g.m if nchw else _pixel_stride(context, y)
    workspace, input_bytes, output_bytes = _parts(op)
    int8 = primitives.layer_dtype(op) is DType.INT8
    element, suffix = ("int8_t", "s8") if int8 else ("float", "f32")
    weights = context.array(primitives.arrange_weights(op, choice), f"weights, {choice.label}")
    # int8: the requantization (its per-channel multipliers and shifts are constant arrays)
    struct = params.requant(op) if int8 else params.float_activation(op)
    initializer = params.initializer(struct, lambda field, data: context.array(data, field))
    fields = ", ".join(str(v) for v in (*vars(g).values(), x_stride, y_stride))
    lines = [
        f"const mf_prim_conv p = {{{fields}}};",
        f"const {struct.C_TYPE} q = {initializer};",
        f"char* scratch = {context.scratch('char')};",
        "(void)scratch;",
        f"const {element}* x = {context.pointer(x)};",
        f"{element}* y = {context.pointer(y)};",
    ]
    source, destination = "x", "y"
    if input_bytes:
        lines.append(f"{element}* x_nchw = ({element}*)(scratch + {workspace});")
        lines.append(
            f"mf_nhwc_to_nchw_{suffix}(x, {g.n}, {g.h}, {g.w}, {g.c}, "
            f"{_pixel_stride(context, x)}, x_nchw);"
        )
        source = "x_nchw"
    if output_bytes:
        lines.append(f"{element}* y_nchw = ({element}*)(scratch + {workspace + input_bytes});")
        destination = "y_nchw"
    function = primitives.PRIMITIVES[choice.primitive].c_function(choice.layout, int8)
    space = f"({'void' if int8 else 'float'}*)scratch" if workspace else "NULL"
    lines.append(
        f"{function}({source}, {weights}, {context.pointer(bias)}, {destination}, &p, &q, {space});"
    )
    if output_bytes:
        lines.append(
            f"mf_nchw_to_nhwc_{suffix}(y_nchw, {g.n}, {g.oh}, {g.ow}, {g.m}, y, "
            f"{_pixel_stride(context, y)});"
        )
    return lines
