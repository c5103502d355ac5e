"""Model loading: pick the frontend from the path, then canonicalize.

A model is named by a path to a ``.tflite`` or ``.onnx`` file, or ``zoo:NAME`` for a built-in
network. Frontends are the only code that knows file formats.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

from memfit.errors import ModelFormatError, UnsupportedOpError
from memfit.ir.core import Graph

ZOO_PREFIX = "zoo:"
InputShapes = Mapping[str, Sequence[int]]


def _sniff(path: Path) -> str:
    with path.open("rb") as handle:
        head = handle.read(8)
    if len(head) >= 8 and head[4:8] == b"TFL3":
        return "tflite"
    return "onnx" if path.suffix.lower() == ".onnx" else "unknown"


def load_model(
    source: str | Path, input_shapes: InputShapes | None = None, *, canonical: bool = True
) -> Graph:
    """Read a model file (or ``zoo:NAME``) into a canonical IR graph.

    With ``canonical=False`` the graph is returned as the frontend imported it, op for op as
    the file has it (what TFLite Micro would run), without folding or fusing.
    """
    from memfit.passes import canonicalize

    text = str(source)
    if text.startswith(ZOO_PREFIX):
        from memfit.zoo import build

        graph = build(text[len(ZOO_PREFIX) :])
        return canonicalize(graph) if canonical else graph
    path = Path(text)
    if not path.exists():
        raise ModelFormatError(f"{path}: no such file (give a .tflite or .onnx file, or zoo:NAME)")
    if path.is_dir():
        raise ModelFormatError(f"{path} is a directory; give a .tflite or .onnx file")
    kind = _sniff(path)
    suffix = path.suffix.lower()
    if kind == "tflite" or suffix == ".tflite":
        if kind != "tflite":
            raise ModelFormatError(
                f"{path} is not a TFLite flatbuffer (no 'TFL3' identifier): the file is "
                "corrupt or not a model; re-export it from the converter"
            )
        from memfit.frontends.tflite import load_tflite

        graph = load_tflite(path, input_shapes)
    elif kind == "onnx":
        from memfit.frontends.onnx import load_onnx

        graph = load_onnx(path, input_shapes)
    else:
        raise ModelFormatError(
            f"{path}: unknown model format {suffix or '(no extension)'}; memfit reads .tflite "
            "and .onnx files (or zoo:NAME for a built-in model, see `memfit zoo`)"
        )
    return canonicalize(graph) if canonical else graph


def refuse_unsupported(
    graph_name: str, found: Sequence[tuple[str, str]], supported: Iterable[str]
) -> None:
    """Raise one error listing every (op type, node name) that memfit cannot run.

    ``supported`` names the operator types of the file format that memfit imports.
    """
    if not found:
        return
    lines = "\n".join(f"  - {op_type} (node {node!r})" for op_type, node in found)
    kinds = sorted({op_type for op_type, _ in found})
    raise UnsupportedOpError(
        f"{graph_name}: {len(found)} operator(s) are not supported by memfit "
        f"({', '.join(kinds)}):\n{lines}\n"
        f"Supported: {', '.join(sorted(supported))}.\n"
        "Replace these ops in the model (or convert it with different options) and try again."
    )
