"""ONNX frontend: read a ``.onnx`` file into the IR, converting NCHW to NHWC at import.

Layout rule: every 4-D activation is held NHWC in the IR; a value of any other rank keeps its
ONNX layout. Ops that work per channel or per pixel (convolution, pooling, normalization,
elementwise, concat along channels) are mapped straight onto NHWC with their attributes and
constants permuted once here. Ops whose meaning depends on the memory order (reshape, flatten,
transpose, softmax over a flattened tensor, ...) run on the ONNX layout: the importer wraps them
in explicit transposes (NHWC -> NCHW before, NCHW -> NHWC after) and the ``fold-transposes``
pass cancels, merges or folds every transpose that is not real data movement.

A node whose inputs are all known at import (initializers, ``Constant``, ``ConstantOfShape``,
``Shape`` of a static shape, ``Unsqueeze`` of a constant, ...) is evaluated here with onnx's
reference implementation of that op, so shape plumbing and weights computed in-graph never reach
the IR and follow ONNX semantics exactly.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Container, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from google.protobuf.message import DecodeError
from onnx import helper, numpy_helper

from memfit.errors import (
    InternalError,
    ModelFormatError,
    ShapeError,
    UnsupportedModelError,
)
from memfit.frontends import refuse_unsupported
from memfit.ir.core import Graph, Op, Tensor
from memfit.ir.dtypes import DType
from memfit.ir.ops import infer_shapes

NCHW_TO_NHWC = (0, 2, 3, 1)
NHWC_TO_NCHW = (0, 3, 1, 2)
MIN_OPSET = 7
_NONDETERMINISTIC = frozenset(
    {
        "RandomNormal",
        "RandomUniform",
        "RandomNormalLike",
        "RandomUniformLike",
        "Multinomial",
        "Bernoulli",
    }
)


def load_onnx(path: str | Path, input_shapes: Mapping[str, Sequence[int]] | None = None) -> Graph:
    """Read an ONNX model into an IR graph (NHWC; not yet canonicalized).

    ``input_shapes`` fixes the shape (in the model's own NCHW layout) of inputs whose dimensions
    are unknown or dynamic. Raises ModelFormatError for an unreadable file, UnsupportedOpError
    listing every unsupported node, ShapeError for unknown dimensions.
    """
    path = Path(path)
    model = _read_model(path)
    return _Importer(model, path, dict(input_shapes or {})).run()


def _read_model(path: Path) -> onnx.ModelProto:
    if path.stat().st_size == 0:
        raise ModelFormatError(f"{path} is empty: the file is corrupt or truncated")
    try:
        model = onnx.load(str(path))
    except onnx.checker.ValidationError as exc:  # external weights file missing or unreadable
        raise ModelFormatError(
            f"{path}: cannot read the model's external weights ({exc}); keep the data files "
            "next to the model as exported"
        ) from exc
    except (DecodeError, ValueError, RuntimeError, UnicodeDecodeError, TypeError) as exc:
        raise ModelFormatError(
            f"{path}: cannot read the ONNX model, the file is corrupt or truncated ({exc}); "
            "re-export or re-download it"
        ) from exc
    if not model.HasField("graph") or not model.graph.output:
        raise ModelFormatError(
            f"{path}: the file is corrupt or truncated: it parses but holds no ONNX graph "
            "with outputs; re-export or re-download it"
        )
    return model


class _Importer:
    def __init__(self, model: onnx.ModelProto, path: Path, input_shapes: dict) -> None:
        self.model = model
        self.path = path
        self.input_shapes = {k: tuple(int(d) for d in v) for k, v in input_shapes.items()}
        self.opsets = {o.domain or "": o.version for o in model.opset_import}
        if "ai.onnx" in self.opsets:
            self.opsets.setdefault("", self.opsets["ai.onnx"])
        self.opset = self.opsets.get("", 0)
        self.graph = Graph(model.graph.name or path.stem)
        self.consts: dict[str, np.ndarray] = {}
        """Values known at import, in ONNX layout."""
        self.acts: dict[str, Tensor] = {}
        """IR tensor of each ONNX activation value (NHWC when 4-D)."""
        self.nchw_views: dict[str, Tensor] = {}
        """4-D activations already available in NCHW order (to reuse one transpose)."""
        self.materialized: dict[tuple[str, str], Tensor] = {}
        self.checked_shapes: dict[str, tuple[int, ...]] = {}
        self.reserved: set[str] = set()
        self.consumed: set[str] = set()
        self.node_name = ""
        self.node_label = ""

    # ---- driver ---------------------------------------------------------------------------
    def run(self) -> Graph:
        g = self.model.graph
        if not self.opset:
            raise ModelFormatError(
                f"{self.path}: the model declares no ONNX opset: the file is corrupt or "
                "truncated, or was not written by an ONNX exporter"
            )
        if self.opset < MIN_OPSET:
            raise UnsupportedModelError(
                f"{self.path}: the model uses ONNX opset {self.opset}; memfit reads "
                f"opset {MIN_OPSET} and newer. Upgrade it with "
                "onnx.version_converter.convert_version(model, 13)"
            )
        for init in g.initializer:
            self.consts[init.name] = numpy_helper.to_array(init)
        for node in g.node:
            self.reserved.update(node.output)
            self.consumed.update(i for i in node.input if i)
        self.reserved.update(v.name for v in g.input)
        self.reserved.update(self.consts)
        self.consumed.update(o.name for o in g.output)
        self._refuse_subgraphs()
        self._refuse_unsupported()
        self._add_inputs()
        self.checked_shapes = self._onnx_inferred_shapes()
        for index, node in enumerate(g.node):
            self.node_name = node.name or node.output[0]
            self.node_label = f"node {self.node_name!r} ({node.op_type}, #{index})"
            if self._is_foldable(node, self.consts) or node.op_type in ("Shape", "Size"):
                self._evaluate(node)
            else:
                _CONVERTERS[node.op_type](self, node)
            self._check_shapes(node)
        self._add_outputs()
        self.graph.topological_check()
        return self.graph

    # ---- model checks ---------------------------------------------------------------------
    def _refuse_subgraphs(self) -> None:
        nested = [
            f"{node.op_type} ({node.name or node.output[0]!r})"
            for node in self.model.graph.node
            if any(
                a.type in (onnx.AttributeProto.GRAPH, onnx.AttributeProto.GRAPHS)
                for a in node.attribute
            )
        ]
        if nested:
            raise UnsupportedModelError(
                f"{self.path}: the model has control flow with nested graphs "
                f"({', '.join(nested)}); memfit plans straight-line graphs only. Export the "
                "model with control flow unrolled or removed"
            )

    def _is_foldable(self, node: onnx.NodeProto, known: Container[str]) -> bool:
        if node.op_type in _NONDETERMINISTIC or node.domain not in ("", "ai.onnx"):
            return False
        return all(not name or name in known for name in node.input)

    def _refuse_unsupported(self) -> None:
        known = set(self.consts)
        found = []
        for index, node in enumerate(self.model.graph.node):
            label = node.name or node.output[0] or f"#{index}"
            foldable = self._is_foldable(node, known) or node.op_type in ("Shape", "Size")
            if foldable and _reference_op(node, self.opsets) is not None:
                known.update(node.output)
                continue
            if node.domain not in ("", "ai.onnx"):
                found.append((f"{node.domain}.{node.op_type}", label))
            elif node.op_type not in _CONVERTERS:
                found.append((node.op_type, label))
        refuse_unsupported(f"{self.path.name} (ONNX)", found, _CONVERTERS)

    def _add_inputs(self) -> None:
        real = [v for v in self.model.graph.input if v.name not in self.consts]
        unknown = set(self.input_shapes) - {v.name for v in real}
        if unknown:
            raise ShapeError(
                f"--input-shape names {', '.join(sorted(unknown))}, but the model's inputs are "
                f"{', '.join(v.name for v in real) or 'none'}"
            )
        for value in real:
            elem = value.type.tensor_type.elem_type
            if not value.type.HasField("tensor_type") or elem != onnx.TensorProto.FLOAT:
                type_name = onnx.TensorProto.DataType.Name(elem) if elem else "not a tensor"
                raise UnsupportedModelError(
                    f"{self.path}: input {value.name!r} is {type_name}; memfit's ONNX frontend "
                    "reads float32 models"
                )
            shape = self._input_shape(value)
            internal = _to_nhwc_shape(shape) if len(shape) == 4 else shape
            tensor = self.graph.add_tensor(value.name, internal, DType.FLOAT32)
            self.graph.inputs.append(tensor)
            self.acts[value.name] = tensor
            if len(shape) == 4:
                self.graph.external_perm[value.name] = NCHW_TO_NHWC

    def _input_shape(self, value: onnx.ValueInfoProto) -> tuple[int, ...]:
        tensor_type = value.type.tensor_type
        dims: list[int | str] = []
        if tensor_type.HasField("shape"):
            for d in tensor_type.shape.dim:
                dims.append(d.dim_value if d.dim_value > 0 else (d.dim_param or "?"))
        given = self.input_shapes.get(value.name)
        if given is not None:
            if tensor_type.HasField("shape") and len(given) != len(dims):
                raise ShapeError(
                    f"--input-shape {value.name}={_dims_text(given)} has rank {len(given)}, but "
                    f"input {value.name!r} has rank {len(dims)} ({_dims_text(dims)})"
                )
            for want, have in zip(given, dims, strict=False):
                if isinstance(have, int) and have != want:
                    raise ShapeError(
                        f"--input-shape {value.name}={_dims_text(given)} contradicts the "
                        f"model's fixed shape {_dims_text(dims)} for input {value.name!r}"
                    )
            return given
        if not tensor_type.HasField("shape") or any(not isinstance(d, int) for d in dims):
            suggestion = _dims_text([d if isinstance(d, int) else 1 for d in dims] or [1])
            shown = _dims_text(dims) if tensor_type.HasField("shape") else "unknown rank"
            raise ShapeError(
                f"input {value.name!r} has unknown or dynamic dimensions ({shown}); memfit "
                f"plans static shapes: fix them with --input-shape {value.name}={suggestion}"
            )
        return tuple(int(d) for d in dims)

    def _onnx_inferred_shapes(self) -> dict[str, tuple[int, ...]]:
        """Static shapes from onnx's own shape inference, to cross-check the import against.

        The probe holds the inputs' fixed shapes and only the small initializers (shape
        tensors and the like); large ones become typed inputs, so no weights are serialized.
        """
        g = self.model.graph
        probe_graph = helper.make_graph(
            list(g.node),
            g.name,
            [
                helper.make_tensor_value_info(
                    v.name, onnx.TensorProto.FLOAT, list(self._onnx_shape(self.acts[v.name]))
                )
                for v in g.input
                if v.name in self.acts
            ],
            [
                helper.make_tensor_value_info(v.name, v.type.tensor_type.elem_type, None)
                for v in g.output
            ],
        )
        for init in g.initializer:
            if math.prod(init.dims) <= 64:
                probe_graph.initializer.append(init)
            else:
                probe_graph.input.append(
                    helper.make_tensor_value_info(init.name, init.data_type, list(init.dims))
                )
        probe = helper.make_model(probe_graph, opset_imports=self.model.opset_import)
        try:
            inferred = onnx.shape_inference.infer_shapes(probe, data_prop=True)
        except Exception:  # a model onnx cannot infer is still importable
            return {}
        shapes = {}
        for value in [*inferred.graph.value_info, *inferred.graph.output]:
            tt = value.type.tensor_type
            if tt.HasField("shape") and all(d.dim_value > 0 for d in tt.shape.dim):
                shapes[value.name] = tuple(d.dim_value for d in tt.shape.dim)
        return shapes

    def _check_shapes(self, node: onnx.NodeProto) -> None:
        for name in node.output:
            expected = self.checked_shapes.get(name)
            if not name or expected is None:
                continue
            actual = self.onnx_shape(name)
            if actual != expected:
                raise InternalError(
                    f"{self.node_label}: memfit infers shape {list(actual)} for {name!r} but "
                    f"ONNX shape inference gives {list(expected)}"
                )

    def _add_outputs(self) -> None:
        for value in self.model.graph.output:
            name = value.name
            if name in self.acts:
                tensor = self.acts[name]
            elif name in self.consts:
                tensor = self.ir_tensor(name)
            else:
                raise ModelFormatError(f"{self.path}: graph output {name!r} is never computed")
            if tensor.dtype is not DType.FLOAT32:
                raise UnsupportedModelError(
                    f"{self.path}: output {name!r} is {tensor.dtype}; memfit's ONNX frontend "
                    "reads float32 models"
                )
            self.graph.outputs.append(tensor)
            if len(tensor.shape) == 4:
                self.graph.external_perm[tensor.name] = NCHW_TO_NHWC

    # ---- constants ------------------------------------------------------------------------
    def _evaluate(self, node: onnx.NodeProto) -> None:
        """Compute a node whose inputs are known at import (or that only reads a shape)."""
        if node.op_type in ("Shape", "Size") and node.input[0] not in self.consts:
            shape = np.asarray(self.onnx_shape(node.input[0]), dtype=np.int64)
            if node.op_type == "Size":
                self.consts[node.output[0]] = np.asarray(shape.prod(), dtype=np.int64)
            else:
                start, end = self.attr(node, "start", 0), self.attr(node, "end", None)
                self.consts[node.output[0]] = shape[start:end]
            return
        op = _reference_op(node, self.opsets)
        if op is None:
            raise InternalError(f"{self.node_label}: no reference implementation to fold with")
        args = [self.consts[name] if name else None for name in node.input]
        try:
            results = op.run(*args)
        except Exception as exc:  # a malformed node is the model's problem
            raise ModelFormatError(
                f"{self.path}: {self.node_label} cannot be evaluated on its constant inputs "
                f"({exc}); the model is malformed"
            ) from exc
        for name, value in zip(node.output, results, strict=False):
            if name:
                self.consts[name] = np.asarray(value)

    def is_const(self, name: str) -> bool:
        return name in self.consts

    def const(self, node: onnx.NodeProto, index: int, what: str) -> np.ndarray | None:
        """Input ``index`` as an array; None if absent; an error if computed at run time."""
        name = node.input[index] if index < len(node.input) else ""
        if not name:
            return None
        if name not in self.consts:
            raise UnsupportedModelError(
                f"{self.path}: {self.node_label}: {what} ({name!r}) is computed at run time; "
                "memfit needs it to be a constant of the model"
            )
        return self.consts[name]

    def constant(self, data: np.ndarray, name: str, layout: str = "") -> Tensor:
        """An IR constant for ``data`` (already in the layout the op wants)."""
        key = (name, layout)
        cached = self.materialized.get(key)
        if cached is not None:
            return cached
        data = np.ascontiguousarray(data)
        if data.dtype != np.float32:
            raise UnsupportedModelError(
                f"{self.path}: {self.node_label} computes on {data.dtype} data ({name!r}); "
                "memfit's ONNX frontend reads float32 models"
            )
        # An ONNX constant keeps its name the first time; derived data gets a fresh one.
        unused = name in self.consts and name not in self.graph.tensors
        tensor_name = name if unused else self.fresh(name)
        tensor = self.graph.add_tensor(tensor_name, data.shape, DType.FLOAT32, data=data)
        self.materialized[key] = tensor
        return tensor

    # ---- activations and layout -----------------------------------------------------------
    def onnx_shape(self, name: str) -> tuple[int, ...]:
        if name in self.consts:
            return tuple(self.consts[name].shape)
        return self._onnx_shape(self.act(name))

    @staticmethod
    def _onnx_shape(tensor: Tensor) -> tuple[int, ...]:
        s = tensor.shape
        return (s[0], s[3], s[1], s[2]) if len(s) == 4 else s

    def act(self, name: str) -> Tensor:
        tensor = self.acts.get(name)
        if tensor is None:
            raise ModelFormatError(f"{self.path}: {self.node_label} reads {name!r}, never computed")
        return tensor

    def ir_tensor(self, name: str) -> Tensor:
        """The value in the IR layout (NHWC when 4-D); constants become IR constants."""
        if name in self.consts:
            value = self.consts[name]
            if value.ndim == 4:
                return self.constant(value.transpose(NCHW_TO_NHWC), name, "nhwc")
            return self.constant(value, name)
        return self.act(name)

    def onnx_tensor(self, name: str) -> Tensor:
        """The value in its ONNX layout, adding an NHWC -> NCHW transpose for 4-D activations."""
        if name in self.consts:
            return self.constant(self.consts[name], name)
        tensor = self.act(name)
        if len(tensor.shape) != 4:
            return tensor
        if name not in self.nchw_views:
            self.nchw_views[name] = self.emit(
                "transpose",
                [tensor],
                {"perm": NHWC_TO_NCHW},
                self.fresh(f"{name}_nchw"),
                suffix="to_nchw",
            )
        return self.nchw_views[name]

    def frame_tensor(self, name: str, rank: int) -> Tensor:
        """The value as an operand of a broadcasting op whose output has ``rank`` dims."""
        shape = self.onnx_shape(name)
        if rank != 4 or len(shape) == 4:
            return self.ir_tensor(name) if rank == 4 else self.onnx_tensor(name)
        padded = (1,) * (4 - len(shape)) + shape
        if name in self.consts:
            data = self.consts[name].reshape(padded).transpose(NCHW_TO_NHWC)
            return self.constant(data, name, "nhwc")
        nchw = self.emit(
            "reshape",
            [self.act(name)],
            {},
            self.fresh(f"{name}_4d"),
            shape=padded,
            suffix="to_4d",
        )
        return self.emit(
            "transpose",
            [nchw],
            {"perm": NCHW_TO_NHWC},
            self.fresh(f"{name}_nhwc"),
            suffix="to_nhwc",
        )

    def nhwc_input(self, node: onnx.NodeProto, index: int = 0) -> Tensor:
        """Input ``index``, which must be a 4-D (NCHW in ONNX) activation."""
        tensor = self.ir_tensor(node.input[index])
        if len(tensor.shape) != 4:
            raise UnsupportedModelError(
                f"{self.path}: {self.node_label}: memfit supports {node.op_type} on 4-D "
                f"(N, C, H, W) tensors only; this input has shape {list(tensor.shape)}"
            )
        return tensor

    def fresh(self, base: str) -> str:
        """A tensor name not used by the graph nor by any ONNX value still to be imported."""
        return self.graph.unique_name(base, self.reserved | set(self.graph.tensors))

    def emit(
        self,
        kind: str,
        inputs: Sequence[Tensor | None],
        attrs: dict[str, Any],
        out_name: str,
        *,
        shape: Sequence[int] | None = None,
        suffix: str = "",
    ) -> Tensor:
        """Add one IR op; its output shape comes from memfit's own shape inference."""
        op_name = self.node_name or kind
        if suffix:
            op_name = f"{op_name}/{suffix}"
        if shape is None:
            shape = infer_shapes(Op(kind, op_name, inputs, [], attrs))[0]
        out = self.graph.add_tensor(out_name, shape, DType.FLOAT32)
        self.graph.add_op(kind, inputs, [out], attrs, name=op_name)
        return out

    def define(
        self,
        name: str,
        kind: str,
        inputs: Sequence[Tensor | None],
        attrs: dict[str, Any],
        *,
        shape: Sequence[int] | None = None,
    ) -> Tensor:
        """Emit the op computing ONNX value ``name`` in the IR layout (NHWC when 4-D)."""
        tensor = self.emit(kind, inputs, attrs, name, shape=shape)
        self.acts[name] = tensor
        return tensor

    def define_onnx_layout(
        self,
        name: str,
        kind: str,
        inputs: Sequence[Tensor | None],
        attrs: dict[str, Any],
        *,
        shape: Sequence[int] | None = None,
    ) -> Tensor:
        """Emit an op that computes ``name`` in ONNX layout; transpose a 4-D result to NHWC."""
        if shape is None:
            shape = infer_shapes(Op(kind, name, inputs, [], attrs))[0]
        if len(shape) != 4:
            return self.define(name, kind, inputs, attrs, shape=shape)
        nchw = self.emit(kind, inputs, attrs, self.fresh(f"{name}_nchw"), shape=shape)
        self.nchw_views[name] = nchw
        return self.define(name, "transpose", [nchw], {"perm": NCHW_TO_NHWC})

    def alias(self, node: onnx.NodeProto, kind: str = "identity") -> None:
        self.define(node.output[0], kind, [self.ir_tensor(node.input[0])], {})

    # ---- attributes -----------------------------------------------------------------------
    @staticmethod
    def attr(node: onnx.NodeProto, key: str, default: Any = None) -> Any:
        for a in node.attribute:
            if a.name == key:
                value = helper.get_attribute_value(a)
                return value.decode() if isinstance(value, bytes) else value
        return default

    def refuse(self, why: str) -> UnsupportedModelError:
        return UnsupportedModelError(f"{self.path}: {self.node_label}: {why}")

    def spatial_pads(
        self,
        node: onnx.NodeProto,
        in_hw: Sequence[int],
        kernel: Sequence[int],
        strides: Sequence[int],
        dilations: Sequence[int],
    ) -> tuple[int, int, int, int]:
        """(top, left, bottom, right) from ``pads`` or ``auto_pad``."""
        auto_pad = self.attr(node, "auto_pad", "NOTSET")
        if auto_pad in ("SAME_UPPER", "SAME_LOWER"):
            begin, end = [], []
            for size, k, s, d in zip(in_hw, kernel, strides, dilations, strict=True):
                out = -(-size // s)
                total = max(0, (out - 1) * s + (k - 1) * d + 1 - size)
                small, large = total // 2, total - total // 2
                begin.append(small if auto_pad == "SAME_UPPER" else large)
                end.append(large if auto_pad == "SAME_UPPER" else small)
            return (begin[0], begin[1], end[0], end[1])
        if auto_pad == "VALID":
            return (0, 0, 0, 0)
        if auto_pad != "NOTSET":
            raise self.refuse(f"unknown auto_pad {auto_pad!r}")
        pads = tuple(self.attr(node, "pads", (0, 0, 0, 0)))
        if len(pads) != 4 or min(pads) < 0:
            raise self.refuse(f"pads {list(pads)} are not 4 non-negative values for 2-D data")
        return pads  # ONNX [x1_begin, x2_begin, x1_end, x2_end] is already (t, l, b, r)


def _dims_text(dims: Sequence[int | str]) -> str:
    return ",".join(str(d) for d in dims)


def _to_nhwc_shape(shape: Sequence[int]) -> tuple[int, ...]:
    return tuple(shape[p] for p in NCHW_TO_NHWC)


_REFERENCE_CACHE: dict[tuple[str, str, int], Any] = {}


def _reference_op(node: onnx.NodeProto, opsets: Mapping[str, int]) -> Any:
    """onnx's reference implementation of ``node`` (bound to its attributes), or None."""
    from onnx.reference.ops import load_op

    domain = node.domain if node.domain != "ai.onnx" else ""
    version = opsets.get(domain, opsets.get("", 0))
    key = (domain, node.op_type, version)
    if key not in _REFERENCE_CACHE:
        try:
            _REFERENCE_CACHE[key] = load_op(domain, node.op_type, version)
        except Exception:  # unknown op: simply not foldable
            _REFERENCE_CACHE[key] = None
    cls = _REFERENCE_CACHE[key]
    if cls is None:
        return None
    params = {"log": lambda *_: None, "opsets": dict(opsets), "verbose": 0, "new_ops": None}
    return cls(node, params)


# ---- converters ------------------------------------------------------------------------------

Converter = Callable[[_Importer, onnx.NodeProto], None]
_CONVERTERS: dict[str, Converter] = {}


def _converter(*op_types: str) -> Callable[[Converter], Converter]:
    def decorate(fn: Converter) -> Converter:
        for op_type in op_types:
            _CONVERTERS[op_type] = fn
        return fn

    return decorate


@_converter("Conv")
def _conv(imp: _Importer, node: onnx.NodeProto) -> None:
    x = imp.nhwc_input(node)
    w = imp.const(node, 1, "the weights")
    assert w is not None
    if w.ndim != 4:
        raise imp.refuse(f"only 2-D convolutions are supported (weights {list(w.shape)})")
    bias = imp.const(node, 2, "the bias")
    groups = int(imp.attr(node, "group", 1))
    kernel = w.shape[2:]
    strides = tuple(imp.attr(node, "strides", (1, 1)))
    dilations = tuple(imp.attr(node, "dilations", (1, 1)))
    pads = imp.spatial_pads(node, x.shape[1:3], kernel, strides, dilations)
    cin, cout = x.shape[3], w.shape[0]
    if cin % groups or cout % groups or w.shape[1] != cin // groups:
        raise ShapeError(
            f"{imp.path}: {imp.node_label}: weights {list(w.shape)} with group={groups} do not "
            f"fit {cin} input channels"
        )
    name = node.input[1]
    attrs: dict[str, Any] = {"strides": strides, "dilations": dilations, "pads": pads}
    if groups > 1 and groups == cin and w.shape[1] == 1:
        weight = imp.constant(w.transpose(1, 2, 3, 0), name, "depthwise")
        attrs.update(depth_multiplier=cout // cin, activation="none")
        kind = "depthwise_conv2d"
    else:
        weight = imp.constant(w.transpose(0, 2, 3, 1), name, "ohwi")
        attrs.update(groups=groups, activation="none")
        kind = "conv2d"
    b = None if bias is None else imp.constant(bias, node.input[2])
    imp.define(node.output[0], kind, [x, weight, b], attrs)


def _ceil_extra(size: int, pad_begin: int, pad_end: int, kernel: int, stride: int) -> int:
    """Extra end padding that makes floor-mode pooling produce ceil-mode's output size.

    As onnxruntime does, a window that would start inside the end padding is dropped.
    """
    span = size + pad_begin + pad_end - kernel
    out = -(-span // stride) + 1
    if (out - 1) * stride >= size + pad_begin:
        out -= 1
    return max(0, (out - 1) * stride + kernel - (size + pad_begin + pad_end))


@_converter("MaxPool", "AveragePool")
def _pool(imp: _Importer, node: onnx.NodeProto) -> None:
    if len(node.output) > 1 and node.output[1] in imp.consumed:
        raise imp.refuse("the Indices output of MaxPool is not supported")
    x = imp.nhwc_input(node)
    kernel = tuple(imp.attr(node, "kernel_shape"))
    strides = tuple(imp.attr(node, "strides", (1, 1)))
    if len(kernel) != 2:
        raise imp.refuse(f"only 2-D pooling is supported (kernel_shape {list(kernel)})")
    if any(d != 1 for d in imp.attr(node, "dilations", (1, 1))):
        raise imp.refuse("dilated pooling is not supported")
    pads = imp.spatial_pads(node, x.shape[1:3], kernel, strides, (1, 1))
    extra = [0, 0]
    if imp.attr(node, "ceil_mode", 0):
        extra = [
            _ceil_extra(x.shape[1 + i], pads[i], pads[2 + i], kernel[i], strides[i])
            for i in range(2)
        ]
        spans = [x.shape[1 + i] + pads[i] + pads[2 + i] - kernel[i] for i in range(2)]
        kept = [(spans[i] + extra[i]) // strides[i] + 1 for i in range(2)]
        if kept != [-(-spans[i] // strides[i]) + 1 for i in range(2)]:
            # onnx's shape inference keeps windows that start in the padding; onnxruntime (the
            # reference) drops them, and so does memfit: stop comparing with onnx from here on.
            imp.checked_shapes = {}
    with_extra = (pads[0], pads[1], pads[2] + extra[0], pads[3] + extra[1])
    attrs: dict[str, Any] = {"kernel": kernel, "strides": strides, "activation": "none"}
    if node.op_type == "MaxPool":
        imp.define(node.output[0], "max_pool2d", [x], {**attrs, "pads": with_extra})
        return
    include_pad = bool(imp.attr(node, "count_include_pad", 0)) and any(pads)
    if include_pad and any(extra):
        # The divisor counts the explicit padding but not ceil mode's extra: pad explicitly.
        padding = ((0, 0), (pads[0], pads[2]), (pads[1], pads[3]), (0, 0))
        x = imp.emit(
            "pad",
            [x],
            {"pads": padding, "value": 0.0},
            imp.fresh(f"{node.output[0]}_padded"),
            suffix="pad",
        )
        with_extra, include_pad = (0, 0, extra[0], extra[1]), False
    attrs.update(pads=with_extra, count_include_pad=include_pad)
    imp.define(node.output[0], "avg_pool2d", [x], attrs)


@_converter("GlobalAveragePool", "GlobalMaxPool")
def _global_pool(imp: _Importer, node: onnx.NodeProto) -> None:
    kind = "mean" if node.op_type == "GlobalAveragePool" else "reduce_max"
    imp.define(node.output[0], kind, [imp.nhwc_input(node)], {"axes": (1, 2), "keepdims": True})


@_converter("ReduceMean", "ReduceMax")
def _reduce(imp: _Importer, node: onnx.NodeProto) -> None:
    kind = "mean" if node.op_type == "ReduceMean" else "reduce_max"
    rank = len(imp.onnx_shape(node.input[0]))
    axes = imp.attr(node, "axes", None)
    if axes is None and len(node.input) > 1 and node.input[1]:
        axes = imp.const(node, 1, "the axes").tolist()  # type: ignore[union-attr]
    if not axes:
        if imp.attr(node, "noop_with_empty_axes", 0):
            imp.alias(node)
            return
        axes = list(range(rank))
    axes = sorted(a % rank for a in axes)
    keepdims = bool(imp.attr(node, "keepdims", 1))
    name = node.output[0]
    if rank != 4:
        imp.define(
            name, kind, [imp.ir_tensor(node.input[0])], {"axes": tuple(axes), "keepdims": keepdims}
        )
        return
    nhwc_axes = tuple(sorted(NCHW_TO_NHWC.index(a) for a in axes))
    attrs = {"axes": nhwc_axes, "keepdims": True}
    if keepdims:
        imp.define(name, kind, [imp.ir_tensor(node.input[0])], attrs)
        return
    kept = imp.emit(kind, [imp.ir_tensor(node.input[0])], attrs, imp.fresh(f"{name}_keepdims"))
    nchw = imp.emit(
        "transpose", [kept], {"perm": NHWC_TO_NCHW}, imp.fresh(f"{name}_nchw"), suffix="to_nchw"
    )
    shape = tuple(d for i, d in enumerate(imp.onnx_shape(node.input[0])) if i not in axes)
    imp.define_onnx_layout(name, "reshape", [nchw], {}, shape=shape)


@_converter("BatchNormalization")
def _batch_norm(imp: _Importer, node: onnx.NodeProto) -> None:
    if any(name in imp.consumed for name in node.output[1:]):
        raise imp.refuse("training-mode outputs (running mean/var) are not supported")
    x = imp.ir_tensor(node.input[0])
    if len(x.shape) not in (2, 4):
        raise imp.refuse(f"BatchNormalization on a {len(x.shape)}-D tensor is not supported")
    params = [
        imp.constant(imp.const(node, i, what), node.input[i])  # type: ignore[arg-type]
        for i, what in enumerate(("", "the scale", "the bias", "the mean", "the variance"))
        if i > 0
    ]
    epsilon = float(imp.attr(node, "epsilon", 1e-5))
    imp.define(node.output[0], "batch_norm", [x, *params], {"epsilon": epsilon})


@_converter("LRN")
def _lrn(imp: _Importer, node: onnx.NodeProto) -> None:
    size = int(imp.attr(node, "size"))
    if size % 2 == 0:
        raise imp.refuse(f"LRN with an even size ({size}) sums an asymmetric window")
    attrs = {
        "radius": (size - 1) // 2,
        "bias": float(imp.attr(node, "bias", 1.0)),
        "alpha": float(imp.attr(node, "alpha", 1e-4)) / size,
        "beta": float(imp.attr(node, "beta", 0.75)),
    }
    imp.define(node.output[0], "lrn", [imp.nhwc_input(node)], attrs)


def _fully_connected(
    imp: _Importer,
    name: str,
    a: Tensor,
    weights: np.ndarray,
    bias: np.ndarray | None,
    weight_name: str,
    keep_num_dims: bool,
) -> None:
    w = imp.constant(weights.astype(np.float32), weight_name, "fc")
    b = None if bias is None else imp.constant(bias.astype(np.float32), f"{weight_name}_bias")
    imp.define(
        name, "fully_connected", [a, w, b], {"activation": "none", "keep_num_dims": keep_num_dims}
    )


@_converter("Gemm")
def _gemm(imp: _Importer, node: onnx.NodeProto) -> None:
    alpha = float(imp.attr(node, "alpha", 1.0))
    beta = float(imp.attr(node, "beta", 1.0))
    trans_a, trans_b = imp.attr(node, "transA", 0), imp.attr(node, "transB", 0)
    name = node.output[0]
    a = imp.onnx_tensor(node.input[0])
    if trans_a:
        a = imp.emit("transpose", [a], {"perm": (1, 0)}, imp.fresh(f"{name}_a"), suffix="trans_a")
    c = imp.const(node, 2, "the bias C")
    if imp.is_const(node.input[1]):
        b = imp.consts[node.input[1]]
        weights = (b if trans_b else b.T) * np.float32(alpha)  # [N, K]
        n = weights.shape[0]
        bias = None
        if c is not None and c.size in (1, n) and (c.ndim < 2 or c.shape[0] == 1):
            bias = np.broadcast_to(c.reshape(-1) * np.float32(beta), (n,))
            c = None
        if c is None:
            _fully_connected(imp, name, a, weights, bias, node.input[1], False)
            return
        w = imp.constant(weights.astype(np.float32), node.input[1], "fc")
        product = imp.emit(
            "fully_connected",
            [a, w, None],
            {"activation": "none", "keep_num_dims": False},
            imp.fresh(f"{name}_ab"),
        )
    else:
        b_t = imp.onnx_tensor(node.input[1])
        if trans_b:
            b_t = imp.emit(
                "transpose", [b_t], {"perm": (1, 0)}, imp.fresh(f"{name}_b"), suffix="trans_b"
            )
        if alpha == 1.0 and c is None:
            imp.define(name, "matmul", [a, b_t], {})
            return
        product = imp.emit("matmul", [a, b_t], {}, imp.fresh(f"{name}_ab"))
        if alpha != 1.0:
            scale = imp.constant(np.asarray(alpha, dtype=np.float32), f"{name}_alpha")
            if c is None:
                imp.define(name, "mul", [product, scale], {"activation": "none"})
                return
            product = imp.emit(
                "mul", [product, scale], {"activation": "none"}, imp.fresh(f"{name}_alpha_ab")
            )
    assert c is not None
    shift = imp.constant((c * np.float32(beta)).astype(np.float32), f"{name}_c")
    imp.define(name, "add", [product, shift], {"activation": "none"})


@_converter("MatMul")
def _matmul(imp: _Importer, node: onnx.NodeProto) -> None:
    a = imp.onnx_tensor(node.input[0])
    name = node.output[0]
    if len(a.shape) < 2 or len(imp.onnx_shape(node.input[1])) < 2:
        raise imp.refuse("MatMul with a 1-D operand is not supported")
    if imp.is_const(node.input[1]) and imp.consts[node.input[1]].ndim == 2:
        weights = imp.consts[node.input[1]].T
        if len(a.shape) == 4:
            product = imp.emit(
                "fully_connected",
                [a, imp.constant(np.ascontiguousarray(weights), node.input[1], "fc"), None],
                {"activation": "none", "keep_num_dims": True},
                imp.fresh(f"{name}_nchw"),
            )
            imp.nchw_views[name] = product
            imp.define(name, "transpose", [product], {"perm": NCHW_TO_NHWC})
            return
        _fully_connected(imp, name, a, weights, None, node.input[1], len(a.shape) > 2)
        return
    imp.define_onnx_layout(name, "matmul", [a, imp.onnx_tensor(node.input[1])], {})


_BINARY = {
    "Add": "add",
    "Sub": "sub",
    "Mul": "mul",
    "Div": "div",
    "Sum": "add",
    "Max": "maximum",
    "Min": "minimum",
}


@_converter(*_BINARY)
def _binary(imp: _Importer, node: onnx.NodeProto) -> None:
    kind = _BINARY[node.op_type]
    names = [n for n in node.input if n]
    rank = max(len(imp.onnx_shape(n)) for n in names)
    if len(names) == 1:
        imp.alias(node)
        return
    attrs = {"activation": "none"} if kind in ("add", "sub", "mul", "div") else {}
    acc = imp.frame_tensor(names[0], rank)
    for i, other in enumerate(names[1:], start=2):
        operands = [acc, imp.frame_tensor(other, rank)]
        if i == len(names):
            imp.define(node.output[0], kind, operands, attrs)
        else:
            acc = imp.emit(kind, operands, attrs, imp.fresh(f"{node.output[0]}_{i}"))


_UNARY = {
    "Relu": "relu",
    "Sigmoid": "logistic",
    "Tanh": "tanh",
    "HardSwish": "hard_swish",
    "Identity": "identity",
}


@_converter(*_UNARY)
def _unary(imp: _Importer, node: onnx.NodeProto) -> None:
    imp.alias(node, _UNARY[node.op_type])


@_converter("Dropout")
def _dropout(imp: _Importer, node: onnx.NodeProto) -> None:
    if len(node.output) > 1 and node.output[1] in imp.consumed:
        raise imp.refuse("the mask output of Dropout is not supported")
    imp.alias(node, "dropout")


@_converter("LeakyRelu")
def _leaky_relu(imp: _Importer, node: onnx.NodeProto) -> None:
    alpha = float(imp.attr(node, "alpha", 0.01))
    imp.define(node.output[0], "leaky_relu", [imp.ir_tensor(node.input[0])], {"alpha": alpha})


@_converter("Clip")
def _clip(imp: _Importer, node: onnx.NodeProto) -> None:
    if imp.opset < 11:
        low, high = imp.attr(node, "min", -np.inf), imp.attr(node, "max", np.inf)
    else:
        bounds = [imp.const(node, i, what) for i, what in ((1, "the minimum"), (2, "the maximum"))]
        low = -np.inf if bounds[0] is None else float(bounds[0])
        high = np.inf if bounds[1] is None else float(bounds[1])
    x = imp.ir_tensor(node.input[0])
    named = {(0.0, 6.0): "relu6", (-1.0, 1.0): "relu_n1_to_1", (0.0, np.inf): "relu"}
    kind = named.get((float(low), float(high)))
    if kind is not None:
        imp.define(node.output[0], kind, [x], {})
    else:
        imp.define(node.output[0], "clamp", [x], {"min": float(low), "max": float(high)})


@_converter("Cast")
def _cast(imp: _Importer, node: onnx.NodeProto) -> None:
    if imp.attr(node, "to") != onnx.TensorProto.FLOAT:
        to = onnx.TensorProto.DataType.Name(imp.attr(node, "to"))
        raise imp.refuse(f"casting an activation to {to} is not supported (float32 models only)")
    imp.alias(node)


@_converter("Concat")
def _concat(imp: _Importer, node: onnx.NodeProto) -> None:
    names = [n for n in node.input if n]
    rank = len(imp.onnx_shape(names[0]))
    axis = int(imp.attr(node, "axis")) % rank
    if rank == 4:
        inputs = [imp.ir_tensor(n) for n in names]
        axis = NCHW_TO_NHWC.index(axis)
    else:
        inputs = [imp.onnx_tensor(n) for n in names]
    imp.define(node.output[0], "concat", inputs, {"axis": axis, "activation": "none"})


@_converter("Softmax")
def _softmax(imp: _Importer, node: onnx.NodeProto) -> None:
    shape = imp.onnx_shape(node.input[0])
    rank, name = len(shape), node.output[0]
    if imp.opset < 13:
        # Softmax-1/11 normalise over all dims from ``axis`` on, as a 2-D matrix.
        axis = int(imp.attr(node, "axis", 1)) % rank
        if axis == rank - 1 and rank != 4:
            imp.define(name, "softmax", [imp.ir_tensor(node.input[0])], {"axis": -1, "beta": 1.0})
            return
        flat = (math.prod(shape[:axis]), math.prod(shape[axis:]))
        matrix = imp.emit(
            "reshape",
            [imp.onnx_tensor(node.input[0])],
            {},
            imp.fresh(f"{name}_2d"),
            shape=flat,
            suffix="flatten",
        )
        soft = imp.emit(
            "softmax", [matrix], {"axis": -1, "beta": 1.0}, imp.fresh(f"{name}_2d_softmax")
        )
        imp.define_onnx_layout(name, "reshape", [soft], {}, shape=shape)
        return
    axis = int(imp.attr(node, "axis", -1)) % rank
    if rank == 4 and axis == 1:
        imp.define(name, "softmax", [imp.ir_tensor(node.input[0])], {"axis": -1, "beta": 1.0})
        return
    x = imp.onnx_tensor(node.input[0])
    if axis == rank - 1:
        imp.define_onnx_layout(name, "softmax", [x], {"axis": -1, "beta": 1.0})
        return
    to_last = (*(i for i in range(rank) if i != axis), axis)
    moved = imp.emit(
        "transpose", [x], {"perm": to_last}, imp.fresh(f"{name}_moved"), suffix="axis_last"
    )
    soft = imp.emit("softmax", [moved], {"axis": -1, "beta": 1.0}, imp.fresh(f"{name}_last"))
    imp.define_onnx_layout(name, "transpose", [soft], {"perm": tuple(np.argsort(to_last).tolist())})


def _reshape_to(imp: _Importer, node: onnx.NodeProto, shape: Sequence[int]) -> None:
    source = imp.onnx_shape(node.input[0])
    if math.prod(shape) != math.prod(source):
        raise ShapeError(
            f"{imp.path}: {imp.node_label}: cannot reshape {list(source)} to {list(shape)}"
        )
    imp.define_onnx_layout(
        node.output[0],
        "reshape",
        [imp.onnx_tensor(node.input[0])],
        {},
        shape=tuple(int(d) for d in shape),
    )


@_converter("Reshape")
def _reshape(imp: _Importer, node: onnx.NodeProto) -> None:
    spec = imp.const(node, 1, "the target shape")
    assert spec is not None
    source = imp.onnx_shape(node.input[0])
    allow_zero = imp.attr(node, "allowzero", 0)
    dims = [source[i] if d == 0 and not allow_zero else int(d) for i, d in enumerate(spec)]
    if -1 in dims:
        known = math.prod(d for d in dims if d != -1)
        dims[dims.index(-1)] = math.prod(source) // known if known else 0
    _reshape_to(imp, node, dims)


@_converter("Flatten")
def _flatten(imp: _Importer, node: onnx.NodeProto) -> None:
    source = imp.onnx_shape(node.input[0])
    axis = int(imp.attr(node, "axis", 1)) % (len(source) + 1)
    _reshape_to(imp, node, (math.prod(source[:axis]), math.prod(source[axis:])))


def _axes(imp: _Importer, node: onnx.NodeProto) -> list[int] | None:
    axes = imp.attr(node, "axes", None)
    if axes is None and len(node.input) > 1 and node.input[1]:
        axes = imp.const(node, 1, "the axes").tolist()  # type: ignore[union-attr]
    return None if axes is None else [int(a) for a in axes]


@_converter("Squeeze")
def _squeeze(imp: _Importer, node: onnx.NodeProto) -> None:
    source = imp.onnx_shape(node.input[0])
    axes = _axes(imp, node)
    drop = {a % len(source) for a in axes} if axes else {i for i, d in enumerate(source) if d == 1}
    _reshape_to(imp, node, [d for i, d in enumerate(source) if i not in drop])


@_converter("Unsqueeze")
def _unsqueeze(imp: _Importer, node: onnx.NodeProto) -> None:
    source = list(imp.onnx_shape(node.input[0]))
    axes = _axes(imp, node) or []
    rank = len(source) + len(axes)
    for a in sorted(a % rank for a in axes):
        source.insert(a, 1)
    _reshape_to(imp, node, source)


@_converter("Transpose")
def _transpose(imp: _Importer, node: onnx.NodeProto) -> None:
    rank = len(imp.onnx_shape(node.input[0]))
    perm = tuple(int(p) for p in imp.attr(node, "perm", range(rank - 1, -1, -1)))
    imp.define_onnx_layout(
        node.output[0], "transpose", [imp.onnx_tensor(node.input[0])], {"perm": perm}
    )


def _to_ir_order(values: Sequence[Any], rank: int) -> list[Any]:
    """Per-dimension values in ONNX order -> the IR order of the same tensor."""
    return [values[p] for p in NCHW_TO_NHWC] if rank == 4 else list(values)


@_converter("Pad")
def _pad(imp: _Importer, node: onnx.NodeProto) -> None:
    rank = len(imp.onnx_shape(node.input[0]))
    mode = imp.attr(node, "mode", "constant")
    if mode != "constant":
        raise imp.refuse(f"Pad mode {mode!r} is not supported (only 'constant')")
    if imp.opset < 11:
        pads, value = list(imp.attr(node, "pads")), float(imp.attr(node, "value", 0.0))
    else:
        pads = imp.const(node, 1, "the pads").tolist()  # type: ignore[union-attr]
        fill = imp.const(node, 2, "the pad value")
        value = 0.0 if fill is None else float(fill)
        axes = imp.const(node, 3, "the axes")
        if axes is not None:
            full = [0] * (2 * rank)
            for i, a in enumerate(int(a) % rank for a in axes):
                full[a], full[a + rank] = pads[i], pads[i + len(axes)]
            pads = full
    if min(pads) < 0:
        raise imp.refuse("negative pads (cropping) are not supported")
    pairs = [(int(pads[d]), int(pads[d + rank])) for d in range(rank)]
    imp.define(
        node.output[0],
        "pad",
        [imp.ir_tensor(node.input[0])],
        {"pads": tuple(_to_ir_order(pairs, rank)), "value": value},
    )


@_converter("Slice")
def _slice(imp: _Importer, node: onnx.NodeProto) -> None:
    shape = imp.onnx_shape(node.input[0])
    rank = len(shape)
    if imp.opset < 10:
        starts, ends = imp.attr(node, "starts"), imp.attr(node, "ends")
        axes, steps = imp.attr(node, "axes", None), None
    else:
        starts = imp.const(node, 1, "the starts").tolist()  # type: ignore[union-attr]
        ends = imp.const(node, 2, "the ends").tolist()  # type: ignore[union-attr]
        axes_value, steps_value = imp.const(node, 3, "the axes"), imp.const(node, 4, "the steps")
        axes = None if axes_value is None else axes_value.tolist()
        steps = None if steps_value is None else steps_value.tolist()
    axes = list(range(len(starts))) if axes is None else [int(a) % rank for a in axes]
    steps = [1] * len(starts) if steps is None else [int(s) for s in steps]
    begin, end, stride = [0] * rank, list(shape), [1] * rank
    for a, s, e, st in zip(axes, starts, ends, steps, strict=True):
        if st == 0:
            raise imp.refuse("a Slice step of 0 is invalid")
        dim = shape[a]
        s, e = int(s), int(e)
        s = s + dim if s < 0 else s
        e = e + dim if e < 0 else e
        if st > 0:
            begin[a], end[a] = min(max(s, 0), dim), min(max(e, 0), dim)
        else:
            begin[a], end[a] = min(max(s, 0), dim - 1), min(max(e, -1), dim - 1)
        stride[a] = st
    attrs = {
        "begin": tuple(_to_ir_order(begin, rank)),
        "end": tuple(_to_ir_order(end, rank)),
        "strides": tuple(_to_ir_order(stride, rank)),
        "shrink_axes": (),
    }
    imp.define(node.output[0], "strided_slice", [imp.ir_tensor(node.input[0])], attrs)


@_converter("Gather")
def _gather(imp: _Importer, node: onnx.NodeProto) -> None:
    indices = imp.const(node, 1, "the indices")
    assert indices is not None
    shape = imp.onnx_shape(node.input[0])
    rank = len(shape)
    axis = int(imp.attr(node, "axis", 0)) % rank
    flat = [int(i) % shape[axis] for i in np.ravel(indices)]
    step = flat[1] - flat[0] if len(flat) > 1 else 1
    if (
        indices.ndim > 1
        or not flat
        or step == 0
        or any(b - a != step for a, b in itertools.pairwise(flat))
    ):
        raise imp.refuse("Gather on an activation needs a scalar or evenly spaced 1-D indices")
    begin, end, strides = [0] * rank, list(shape), [1] * rank
    begin[axis], strides[axis] = flat[0], step
    end[axis] = flat[-1] + (1 if step > 0 else -1)
    attrs = {
        "begin": tuple(begin),
        "end": tuple(end),
        "strides": tuple(strides),
        "shrink_axes": (axis,) if indices.ndim == 0 else (),
    }
    if rank == 4 and indices.ndim == 1:
        attrs.update(
            begin=tuple(_to_ir_order(begin, 4)),
            end=tuple(_to_ir_order(end, 4)),
            strides=tuple(_to_ir_order(strides, 4)),
        )
        imp.define(node.output[0], "strided_slice", [imp.ir_tensor(node.input[0])], attrs)
        return
    imp.define_onnx_layout(node.output[0], "strided_slice", [imp.onnx_tensor(node.input[0])], attrs)
