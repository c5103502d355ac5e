"""What the benchmarks share: the model sets, the README table writer."""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from pathlib import Path

import onnx

ROOT = Path(__file__).resolve().parent.parent
SHARED_MODELS = ROOT.parent / "shared" / "models" / "tflite"
ONNX_LIGHT = Path(onnx.__file__).parent / "backend" / "test" / "data" / "light"
RESULTS = Path(__file__).resolve().parent / "results"


def shared_models() -> list[Path]:
    return sorted(SHARED_MODELS.glob("*.tflite"))


def onnx_light_models() -> list[Path]:
    return sorted(ONNX_LIGHT.glob("*.onnx"))


def geomean(values: Sequence[float]) -> float:
    """Geometric mean (nan for no values): how ratios over models are summarized."""
    return math.exp(sum(math.log(v) for v in values) / len(values)) if values else float("nan")


def markdown_table(header: list[str], rows: list[list[str]]) -> str:
    align = ["---"] + ["---:"] * (len(header) - 1)
    lines = ["| " + " | ".join(header) + " |", "| " + " | ".join(align) + " |"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def publish(name: str, text: str) -> None:
    """Write ``results/NAME.md`` and replace the README block between its markers."""
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{name}.md").write_text(text)
    readme = ROOT / "README.md"
    content = readme.read_text()
    begin, end = f"<!-- bench:{name}:begin -->", f"<!-- bench:{name}:end -->"
    pattern = re.compile(re.escape(begin) + ".*?" + re.escape(end), re.DOTALL)
    if pattern.search(content):
        readme.write_text(pattern.sub(lambda _: f"{begin}\n{text}{end}", content))
