"""The reference runtimes memfit is compared with: TFLite Micro, LiteRT and onnxruntime.

Arrays are in the model file's own layout (what the reference runtime takes), keyed by
position. Only tests, ``verify``, ``bench`` and the benchmarks use this module.
"""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from memfit.errors import MemfitError

_HEAD = re.compile(r"Arena allocation head (\d+) bytes")
_TAIL = re.compile(r"Arena allocation tail (\d+) bytes")


def run_tflm(path: str | Path, inputs: Sequence[np.ndarray]) -> list[np.ndarray]:
    """Run a .tflite file with the TFLite Micro interpreter (tflite-micro on PyPI)."""
    from tflite_micro.python.tflite_micro import runtime

    interpreter = runtime.Interpreter.from_file(str(path))
    for index, array in enumerate(inputs):
        interpreter.set_input(array, index)
    interpreter.invoke()
    return [np.array(interpreter.get_output(i)) for i in range(_count_outputs(path))]


def _count_outputs(path: str | Path) -> int:
    import tflite

    model = tflite.Model.GetRootAsModel(Path(path).read_bytes(), 0)
    return int(model.Subgraphs(0).OutputsLength())


def run_litert(path: str | Path, inputs: Sequence[np.ndarray]) -> list[np.ndarray]:
    """Run a .tflite file with LiteRT (the full TFLite interpreter), single-threaded."""
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=str(path), num_threads=1)
    interpreter.allocate_tensors()
    for detail, array in zip(interpreter.get_input_details(), inputs, strict=True):
        interpreter.set_tensor(detail["index"], array)
    interpreter.invoke()
    return [interpreter.get_tensor(d["index"]) for d in interpreter.get_output_details()]


def onnxruntime_session(path: str | Path, threads: int = 1):  # type: ignore[no-untyped-def]
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def run_onnxruntime(path: str | Path, inputs: Sequence[np.ndarray]) -> list[np.ndarray]:
    """Run an .onnx file with onnxruntime on the CPU."""
    session = onnxruntime_session(path)
    names = [i.name for i in session.get_inputs()]
    return list(session.run(None, dict(zip(names, inputs, strict=True))))


_PROBE = """
import sys
from tflite_micro.python.tflite_micro import runtime
interpreter = runtime.Interpreter.from_file(sys.argv[1])
interpreter.print_allocations()
"""


def tflm_arena_bytes(path: str | Path) -> tuple[int, int] | None:
    """TFLite Micro's arena (head, tail) bytes for a .tflite file, measured live.

    The interpreter prints its allocations from C++ to stderr, so it runs in a child process
    whose stderr is captured. Returns None when TFLite Micro cannot load the model.
    """
    result = subprocess.run(
        [sys.executable, "-c", _PROBE, str(path)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    head, tail = _HEAD.search(result.stderr), _TAIL.search(result.stderr)
    if result.returncode != 0 or head is None or tail is None:
        return None
    return int(head.group(1)), int(tail.group(1))


class ReferenceUnavailable(MemfitError):
    """No reference runtime can run this model."""
