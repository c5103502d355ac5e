"""C99 sources for one model and its memory plan.

``generate(graph, plan, directory, name)`` writes

- ``<name>.h``: ``int <name>_run(const T* input, T* output)`` (one parameter per model input,
  then one per output), the arena size and the layout of every input and output;
- ``<name>.c``: one ``static`` arena of exactly ``plan.arena.size`` bytes (nothing else static
  and mutable) and the ops in the plan's order, each calling a runtime kernel on pointers into
  the arena at the planned offsets, with ``mf_view`` strides from the plan's placements
  (strided views where a concatenation is written in place) and scratch at the planned
  offsets; ops the plan runs as no-ops (reshape views, concatenations whose inputs were all
  written in place) have no code;
- ``<name>_weights.c`` / ``<name>_weights.h``: every constant (``memfit.codegen.constants``);
- the runtime (``memfit/codegen/runtime``), copied in;
- ``main.c``, an example program, and a ``Makefile`` (``memfit.codegen.program``).

Compiled with ``-DMF_PROFILE``, ``<name>_run_profiled`` also adds each op's wall time into an
array the caller passes (``op_seconds[<NAME>_OP_COUNT]``): that is what ``memfit bench`` and
the cost model measure.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from memfit.codegen import params
from memfit.codegen.boundary import Port, _dense_strides, ports, strided_copy
from memfit.codegen.constants import ALIGNMENT, ConstantTable, c_type
from memfit.codegen.identifiers import c_comment, c_identifier
from memfit.codegen.lowering import LOWERINGS, OpContext, unsupported
from memfit.codegen.program import write_program
from memfit.codegen.views import View, constant_view, tensor_view
from memfit.errors import InputError, InternalError
from memfit.ir.core import Graph, Op, Tensor
from memfit.ir.printer import format_type
from memfit.planning import MemoryPlan
from memfit.planning.scratch import in_place_scratch_bytes
from memfit.planning.storage import InPlace, contiguous_strides

RUNTIME = Path(__file__).resolve().parent / "runtime"
IN_PLACE_KINDS = frozenset({"concat", "elementwise", "narrowing", "depthwise", "pool", "pointwise"})
"""In-place kinds (``memfit.planning.storage.InPlace``) the lowerings handle for ops that write:
concat copies only the inputs not written in place, elementwise kernels (accumulating layers
too) may take their output over an input, the int8 accumulator output writes its bytes in
ascending order over its accumulator, depthwise, pooling and pointwise (1x1) convolutions have
kernels of their own. (Reshape views and concats of views write nothing.)"""


@dataclass(frozen=True)
class EmittedOp:
    """An op that has code, with its index in the profile's ``op_seconds``."""

    index: int
    name: str
    kind: str


@dataclass(frozen=True)
class GeneratedModel:
    """What ``generate`` wrote: enough to build, run and time it."""

    name: str
    directory: Path
    model_sources: tuple[str, ...]
    """The model's and runtime's .c files (no ``main.c``), relative to ``directory``."""
    inputs: tuple[Port, ...]
    outputs: tuple[Port, ...]
    ops: tuple[EmittedOp, ...]
    no_ops: tuple[str, ...]
    """Ops the plan runs without moving data: no code."""
    arena_bytes: int
    constant_bytes: int

    @property
    def program(self) -> str:
        return f"{self.name}_main"


def generate(graph: Graph, plan: MemoryPlan, directory: str | Path, name: str) -> GeneratedModel:
    """Write the C sources of ``graph`` under ``plan`` into ``directory`` (created if needed).

    ``graph`` must be the graph ``plan`` was made for, its ops in the plan's order (as
    ``plan_memory`` and ``restore_plan`` leave it). ``name`` prefixes every C symbol.
    """
    name = c_identifier(name)
    if tuple(op.name for op in graph.ops) != tuple(plan.schedule.order):
        raise InternalError(
            f"graph {graph.name}: its op order is not the plan's; generate code from the graph "
            "plan_memory or restore_plan returned"
        )
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    emitter = _Emitter(graph, plan, name)
    body = emitter.run_function()
    inputs, outputs = emitter.inputs, emitter.outputs
    (out / f"{name}.h").write_text(emitter.public_header())
    (out / f"{name}.c").write_text(emitter.model_source(body))
    (out / f"{name}_weights.h").write_text(emitter.weights_header())
    with (out / f"{name}_weights.c").open("w") as handle:
        handle.writelines(emitter.weights_source())
    runtime_sources = []
    for file in sorted(RUNTIME.iterdir()):
        if file.suffix in (".c", ".h"):
            shutil.copyfile(file, out / file.name)
            if file.suffix == ".c":
                runtime_sources.append(file.name)
    model = GeneratedModel(
        name=name,
        directory=out,
        model_sources=(f"{name}.c", f"{name}_weights.c", *runtime_sources),
        inputs=inputs,
        outputs=outputs,
        ops=tuple(emitter.emitted),
        no_ops=tuple(emitter.no_ops),
        arena_bytes=plan.arena.size,
        constant_bytes=emitter.constants.nbytes,
    )
    write_program(model)
    return model


class _Emitter:
    def __init__(self, graph: Graph, plan: MemoryPlan, name: str) -> None:
        self.graph = graph
        self.plan = plan
        self.name = name
        self.macro = name.upper()
        self.constants = ConstantTable(name)
        self.inputs, self.outputs = ports(graph)
        self.emitted: list[EmittedOp] = []
        self.no_ops: list[str] = []

    # ---- the run function ---------------------------------------------------------------
    def run_function(self) -> list[str]:
        lines: list[str] = []
        arguments = [p.parameter for p in (*self.inputs, *self.outputs)]
        lines.append(f"    if ({' || '.join(f'{a} == NULL' for a in arguments)}) {{")
        lines.append(f"        return {self.macro}_ERROR_NULL_ARGUMENT;")
        lines.append("    }")
        lines.append("    if (!little_endian()) {")
        lines.append(f"        return {self.macro}_ERROR_BYTE_ORDER;")
        lines.append("    }")
        for port in self.inputs:
            lines += self._copy_in(port)
        for op in self.graph.ops:
            lines += self._op(op)
        for port in self.outputs:
            lines += self._copy_out(port)
        lines.append(f"    return {self.macro}_OK;")
        return lines

    def _op(self, op: Op) -> list[str]:
        in_place = self.plan.in_place.get(op.name)
        summary = f"{op.kind} {op.name}"
        if self.plan.storage.moves_no_data(op.name):
            self.no_ops.append(op.name)
            assert in_place is not None
            view = in_place.kind in ("reshape", "slice")
            what = "a view of its input" if view else "written in place"
            return [f"    /* {c_comment(summary)}: {what}, no code */"]
        lowering = LOWERINGS.get(op.kind)
        if lowering is None:
            raise unsupported(op, self.graph)
        if in_place is not None and in_place.kind not in IN_PLACE_KINDS:
            raise unsupported(op, self.graph, f"no C kernel runs it in place ({in_place.kind})")
        index = len(self.emitted)
        context = _Context(self, op, in_place)
        statements = lowering(context)
        self.emitted.append(EmittedOp(index, op.name, op.kind))
        outputs = ", ".join(f"{t.name}: {format_type(t)}" for t in op.outputs)
        lines = [f"    {{   /* op {index}: {c_comment(summary)} -> {c_comment(outputs)} */"]
        lines.append("        MF_OP_BEGIN();")
        lines += [f"        {s}" if s else "" for s in statements]
        lines.append(f"        MF_OP_END({index});")
        lines.append("    }")
        return lines

    def _copy_in(self, port: Port) -> list[str]:
        tensor = port.tensor
        internal = self._element_strides(tensor)
        source = _permuted_strides(port)
        pointer = self._arena_pointer(tensor)
        body = strided_copy("dst", "src", tensor.shape, internal, source, port.c_type)
        return _block(
            f"input {tensor.name}: {port.layout} {list(port.external_shape)}",
            [
                f"const {port.c_type}* src = {port.parameter};",
                f"{port.c_type}* dst = {pointer};",
                *body,
            ],
        )

    def _copy_out(self, port: Port) -> list[str]:
        tensor = port.tensor
        if tensor.is_constant:
            source_pointer = self.constants.tensor(tensor)
            internal = _dense_strides(tensor.shape)
        else:
            source_pointer = self._arena_pointer(tensor)
            internal = self._element_strides(tensor)
        destination = _permuted_strides(port)
        body = strided_copy("dst", "src", tensor.shape, destination, internal, port.c_type)
        return _block(
            f"output {tensor.name}: {port.layout} {list(port.external_shape)}",
            [
                f"const {port.c_type}* src = {source_pointer};",
                f"{port.c_type}* dst = {port.parameter};",
                *body,
            ],
        )

    # ---- addresses ----------------------------------------------------------------------
    def _element_strides(self, tensor: Tensor) -> tuple[int, ...]:
        placement = self.plan.arena.placements[tensor.name]
        itemsize = tensor.dtype.itemsize
        strides = placement.strides or contiguous_strides(tensor.shape, itemsize)
        return tuple(s // itemsize for s in strides)

    def _arena_pointer(self, tensor: Tensor) -> str:
        placement = self.plan.arena.placements.get(tensor.name)
        if placement is None:
            raise InternalError(f"the memory plan has no place for tensor {tensor.name}")
        return f"({c_type(tensor.dtype.numpy)}*)(arena + {placement.offset})"

    # ---- files --------------------------------------------------------------------------
    def _signature(self, function: str, extra: str = "") -> str:
        parameters = [f"const {p.c_type}* {p.parameter}" for p in self.inputs]
        parameters += [f"{p.c_type}* {p.parameter}" for p in self.outputs]
        if extra:
            parameters.append(extra)
        return f"int {function}({', '.join(parameters)})"

    def public_header(self) -> str:
        macro, name = self.macro, self.name
        lines = [
            f"/* {name}: C inference for model {c_comment(repr(self.graph.name))}, generated by "
            "memfit. Do not edit.",
            " *",
            f" *   {self._signature(f'{name}_run')};",
            " *",
            " * Inputs and outputs are dense arrays in C order, in the model file's own layout",
            " * (what memfit.run and the model's reference runtime take). Inside, activations are",
            " * NHWC; an input or output in another layout (NCHW of an ONNX image model) is",
            " * transposed while it is copied into or out of the arena, with no extra buffer.",
            " *",
        ]
        for title, group in (("Inputs", self.inputs), ("Outputs", self.outputs)):
            lines.append(f" * {title}:")
            for port in group:
                t = port.tensor
                quant = f" {t.quant}" if t.quant is not None else ""
                lines.append(
                    f" *   {port.parameter}: {c_comment(repr(t.name))}, {port.c_type} "
                    f"[{', '.join(map(str, port.external_shape))}] {port.layout}{quant}"
                )
        lines += [
            " *",
            f" * Memory: one static arena of {macro}_ARENA_BYTES bytes in {name}.c holds every",
            " * activation and every kernel's scratch; nothing is allocated. The arena makes the",
            " * function non-reentrant: one call at a time.",
            f" * Returns {macro}_OK, or {macro}_ERROR_NULL_ARGUMENT when a pointer is NULL, or",
            f" * {macro}_ERROR_BYTE_ORDER on a big-endian machine (the weights are little-endian).",
            " *",
            f" * Built with -DMF_PROFILE, {name}_run_profiled adds each op's wall time in seconds",
            f" * to op_seconds[{macro}_OP_COUNT] (the caller zeroes it). The ops, in order:",
        ]
        lines += [f" *   {op.index}: {c_comment(op.name)} ({op.kind})" for op in self.emitted]
        lines += [" */", f"#ifndef {macro}_H", f"#define {macro}_H", "", "#include <stdint.h>", ""]
        lines += [
            f"#define {macro}_OK 0",
            f"#define {macro}_ERROR_NULL_ARGUMENT (-1)",
            f"#define {macro}_ERROR_BYTE_ORDER (-2)",
            "",
            f"#define {macro}_ARENA_BYTES {self.plan.arena.size}",
            f"#define {macro}_OP_COUNT {len(self.emitted)}",
        ]
        for group, kind in ((self.inputs, "INPUT"), (self.outputs, "OUTPUT")):
            for i, port in enumerate(group):
                lines.append(f"#define {macro}_{kind}{i}_ELEMENTS {port.elements}")
        lines += [
            "",
            f"{self._signature(f'{name}_run')};",
            "",
            "#ifdef MF_PROFILE",
            f"{self._signature(f'{name}_run_profiled', 'double* op_seconds')};",
            "#endif",
            "",
            f"#endif /* {macro}_H */",
            "",
        ]
        return "\n".join(lines)

    def model_source(self, body: Sequence[str]) -> str:
        name = self.name
        arguments = ", ".join(p.parameter for p in (*self.inputs, *self.outputs))
        lines = [
            f"/* {name}: the ops of model {c_comment(repr(self.graph.name))} in the planned "
            "order, generated by memfit. Do not edit. */",
            "#ifdef MF_PROFILE",
            "#define _POSIX_C_SOURCE 199309L /* clock_gettime */",
            "#include <time.h>",
            "#endif",
            "#include <math.h>",
            "#include <stddef.h>",
            "#include <stdint.h>",
            "#include <string.h>",
            "",
            '#include "memfit_runtime.h"',
            '#include "mf_primitives.h"',
            f'#include "{name}.h"',
            f'#include "{name}_weights.h"',
            "",
            "/* Every activation and scratch buffer, at the offsets memfit planned. */",
            f"static MF_ALIGNAS({ALIGNMENT}) uint8_t arena[{self.plan.arena.size}];",
            "",
            *(self._timers() if self.emitted else []),
            "static int little_endian(void) {",
            "    const uint32_t one = 1;",
            "    return *(const unsigned char*)&one == 1;",
            "}",
            "",
            f"static {self._signature('run', 'double* op_seconds')} {{",
            "    (void)op_seconds;",
            *body,
            "}",
            "",
            f"{self._signature(f'{name}_run')} {{",
            f"    return run({arguments}, NULL);",
            "}",
            "",
            "#ifdef MF_PROFILE",
            f"{self._signature(f'{name}_run_profiled', 'double* op_seconds')} {{",
            f"    return run({arguments}, op_seconds);",
            "}",
            "#endif",
            "",
        ]
        return "\n".join(lines)

    @staticmethod
    def _timers() -> list[str]:
        return [
            "#ifdef MF_PROFILE",
            "static double now_seconds(void) {",
            "    struct timespec t;",
            "    clock_gettime(CLOCK_MONOTONIC, &t);",
            "    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;",
            "}",
            "#define MF_OP_BEGIN() const double op_start = now_seconds()",
            "#define MF_OP_END(index) \\",
            "    if (op_seconds != NULL) op_seconds[index] += now_seconds() - op_start",
            "#else",
            "#define MF_OP_BEGIN() (void)0",
            "#define MF_OP_END(index) (void)0",
            "#endif",
            "",
        ]

    def weights_header(self) -> str:
        guard = f"{self.macro}_WEIGHTS_H"
        lines = [
            f"/* {self.name}: the constants of model {c_comment(repr(self.graph.name))}, "
            f"{self.constants.nbytes} bytes, generated by memfit. */",
            f"#ifndef {guard}",
            f"#define {guard}",
            "",
            "#include <stdint.h>",
            "",
            "#ifndef MF_ALIGNAS",
            "#if defined(__STDC_VERSION__) && __STDC_VERSION__ >= 201112L",
            "#define MF_ALIGNAS(n) _Alignas(n)",
            "#elif defined(__GNUC__) || defined(__clang__)",
            "#define MF_ALIGNAS(n) __attribute__((aligned(n)))",
            "#else",
            "#define MF_ALIGNAS(n) /* no alignment beyond the type's */",
            "#endif",
            "#endif",
            "",
            "#if defined(__BYTE_ORDER__) && defined(__ORDER_LITTLE_ENDIAN__) \\",
            "    && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__",
            "#error the weights are stored little-endian; this target is not",
            "#endif",
            "",
        ]
        lines += [array.declaration() for array in self.constants.arrays]
        lines += [f"#endif /* {guard} */", ""]
        return "\n".join(lines)

    def weights_source(self) -> Iterable[str]:
        yield f"/* {self.name}: constants, generated by memfit. Do not edit. */\n"
        yield f'#include "{self.name}_weights.h"\n\n'
        for array in self.constants.arrays:
            yield from array.definition()
            yield "\n"


class _Context(OpContext):
    """What a lowering may ask about the op it lowers."""

    def __init__(self, emitter: _Emitter, op: Op, in_place: InPlace | None) -> None:
        self._emitter = emitter
        self.op = op
        self.in_place = in_place
        self.graph = emitter.graph

    def view(self, tensor: Tensor) -> View:
        if tensor.is_constant:
            return constant_view(tensor)
        return tensor_view(tensor, self._emitter.plan.arena)

    def strides(self, tensor: Tensor) -> tuple[int, ...]:
        if tensor.is_constant:
            return _dense_strides(tensor.shape)
        return self._emitter._element_strides(tensor)

    def pointer(self, tensor: Tensor | None) -> str:
        if tensor is None:
            return "NULL"
        if tensor.is_constant:
            return self._emitter.constants.tensor(tensor)
        return self._emitter._arena_pointer(tensor)

    def address(self, tensor: Tensor, element_offset: int) -> str:
        if element_offset == 0:
            return self.pointer(tensor)
        return f"{self.pointer(tensor)} + {element_offset}"

    def array(self, data: np.ndarray, description: str) -> str:
        return self._emitter.constants.array(data, f"{self.op.name}: {description}")

    def scratch_bytes(self) -> int:
        name = self._emitter.plan.lifetimes.scratch.get(self.op.name)
        return 0 if name is None else self._emitter.plan.lifetimes.buffer(name).size

    def scratch(self, c_type_name: str) -> str:
        """The op's scratch, checked to be as large as its kernel needs."""
        needed = params.workspace_bytes(self.op)
        if self.in_place is not None:
            needed += in_place_scratch_bytes(self.op)
        if needed == 0:
            return "NULL"
        planned = self.scratch_bytes()
        if planned < needed:
            raise InputError(
                f"the plan reserves {planned} bytes of scratch for op {self.op.name!r} "
                f"({self.op.kind}) but its C kernel needs {needed}; the plan was made without "
                "the C kernels' workspace (memfit.codegen.plan.plan_for_c makes one with it)"
            )
        offset = self._emitter.plan.scratch_offsets[self.op.name]
        return f"({c_type_name}*)(arena + {offset})"

    def temporary(self, c_type: str) -> str:
        self.scratch(c_type)  # checks that the plan reserved the workspace and the temporary
        offset = self._emitter.plan.arena.temporaries.get(self.op.name)
        if offset is None:
            raise InternalError(f"op {self.op.name} runs in place without a planned temporary")
        return f"({c_type}*)(arena + {offset})"


def _permuted_strides(port: Port) -> tuple[int, ...]:
    """Element strides of the caller's dense array, per internal axis."""
    external = _dense_strides(port.external_shape)
    if port.perm is None:
        return external
    return tuple(external[axis] for axis in port.perm)


def _block(comment: str, statements: Sequence[str]) -> list[str]:
    return (
        [f"    {{   /* {c_comment(comment)} */"] + [f"        {s}" for s in statements] + ["    }"]
    )
