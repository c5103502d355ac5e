"""The reference runtime a model file is checked and timed against.

- ``.tflite``: the TFLite Micro interpreter (``tflite-micro``); for a file it cannot load
  (``mlperf_tiny_kws_f32``: hybrid layers, float input with int8 weights), LiteRT with its
  builtin kernels (its default XNNPACK delegate quantizes hybrid inputs differently), one
  thread. LSTM state: every run starts from a reset interpreter (state at real zero), as
  memfit's LSTM kernels assume.
- ``.onnx``: onnxruntime on the CPU, one intra-op thread.
- built-in zoo models have no reference runtime.

Arrays are in the model file's own layout, by position.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from memfit.reference import onnxruntime_session

Run = Callable[[Sequence[np.ndarray]], list[np.ndarray]]
Time = Callable[[Sequence[np.ndarray]], float]


@dataclass(frozen=True)
class Reference:
    """A loaded reference runtime: ``run`` computes outputs, ``time`` one timed inference."""

    name: str
    key: str
    """Short name for JSON keys: ``tflm``, ``litert``, ``onnxruntime``."""
    note: str
    run: Run
    time: Time


def reference_for(model: str) -> Reference | None:
    """The reference runtime of a model path; None for zoo models (no file)."""
    path = Path(model)
    if path.suffix == ".tflite" and path.is_file():
        return _tflite_micro(path) or _litert(path)
    if path.suffix == ".onnx" and path.is_file():
        return _onnxruntime(path)
    return None


@contextlib.contextmanager
def _quiet_stderr() -> Iterator[None]:
    """Silence the C++ messages a runtime prints on file descriptor 2 (e.g. why TFLite Micro
    refuses a model, which the caller reports its own way)."""
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def _tflite_micro(path: Path) -> Reference | None:
    from tflite_micro.python.tflite_micro import runtime

    try:
        with _quiet_stderr():
            interpreter = runtime.Interpreter.from_file(str(path))
    except RuntimeError:
        return None
    outputs = _count_outputs(interpreter)

    def prepare(inputs: Sequence[np.ndarray]) -> None:
        interpreter.reset()
        for index, array in enumerate(inputs):
            interpreter.set_input(np.ascontiguousarray(array), index)

    def run(inputs: Sequence[np.ndarray]) -> list[np.ndarray]:
        prepare(inputs)
        interpreter.invoke()
        return [np.array(interpreter.get_output(i)) for i in range(outputs)]

    def timed(inputs: Sequence[np.ndarray]) -> float:
        prepare(inputs)
        start = time.perf_counter()
        interpreter.invoke()
        return time.perf_counter() - start

    return Reference("tflite-micro", "tflm", "TFLite Micro interpreter", run, timed)


def _count_outputs(interpreter: object) -> int:
    """Outputs of a TFLite Micro interpreter (its API has no count: probe the indices)."""
    count = 0
    with _quiet_stderr():  # it prints "Output index N out of range" before raising
        while True:
            try:
                interpreter.get_output_details(count)  # type: ignore[attr-defined]
            except IndexError:
                return count
            count += 1


def _litert(path: Path) -> Reference:
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    interpreter = Interpreter(
        model_path=str(path),
        num_threads=1,
        experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES,
    )
    interpreter.allocate_tensors()
    inputs_detail = interpreter.get_input_details()
    outputs_detail = interpreter.get_output_details()

    def prepare(inputs: Sequence[np.ndarray]) -> None:
        interpreter.reset_all_variables()
        for detail, array in zip(inputs_detail, inputs, strict=True):
            interpreter.set_tensor(detail["index"], np.ascontiguousarray(array))

    def run(inputs: Sequence[np.ndarray]) -> list[np.ndarray]:
        prepare(inputs)
        interpreter.invoke()
        return [np.array(interpreter.get_tensor(d["index"])) for d in outputs_detail]

    def timed(inputs: Sequence[np.ndarray]) -> float:
        prepare(inputs)
        start = time.perf_counter()
        interpreter.invoke()
        return time.perf_counter() - start

    note = "LiteRT builtin kernels (TFLite Micro cannot load this file)"
    return Reference("litert", "litert", note, run, timed)


def _onnxruntime(path: Path) -> Reference:
    session = onnxruntime_session(path, threads=1)
    names = [i.name for i in session.get_inputs()]

    def run(inputs: Sequence[np.ndarray]) -> list[np.ndarray]:
        return [np.asarray(a) for a in session.run(None, dict(zip(names, inputs, strict=True)))]

    def timed(inputs: Sequence[np.ndarray]) -> float:
        feed = dict(zip(names, inputs, strict=True))
        start = time.perf_counter()
        session.run(None, feed)
        return time.perf_counter() - start

    note = "onnxruntime, CPU, one intra-op thread"
    return Reference("onnxruntime", "onnxruntime", note, run, timed)
