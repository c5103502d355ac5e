"""The example program beside a generated model: ``main.c`` and a ``Makefile``.

``main.c`` reads the inputs from raw binary files, runs the model, writes the outputs, and with
``--repeat N`` times N more runs inside the process (so process start-up is not measured);
``memfit verify`` and ``memfit bench`` run exactly this program. The compiler flags live here
once, for the Makefile and for ``memfit.codegen.toolchain`` alike: ``-O3`` so that the kernels'
loops vectorize (GCC's ``-O2`` vectorizes almost none of them) and ``-march=native`` for the
host's vector width (the program runs where it is built; to build for another target, override
``CFLAGS``, e.g. ``make CFLAGS="-O3 -std=c99 -mcpu=cortex-m7"``).
"""

from __future__ import annotations

from pathlib import Path
from string import Template
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from memfit.codegen.emit import GeneratedModel

CFLAGS = ("-O3", "-march=native", "-std=c99")
LDLIBS = ("-lm",)
PROFILE_DEFINE = "-DMF_PROFILE"

_TEMPLATES = Path(__file__).resolve().parent / "templates"


def write_program(model: GeneratedModel) -> None:
    """Write ``main.c`` and ``Makefile`` for ``model`` into its directory."""
    name, macro = model.name, model.name.upper()
    buffers, reads, writes = [], [], []
    for i, port in enumerate(model.inputs):
        buffers.append(f"static {port.c_type} {port.parameter}[{macro}_INPUT{i}_ELEMENTS];")
        reads.append(_file_call("read_file", 1 + i, port.parameter))
    for i, port in enumerate(model.outputs):
        buffers.append(f"static {port.c_type} {port.parameter}[{macro}_OUTPUT{i}_ELEMENTS];")
        writes.append(_file_call("write_file", 1 + len(model.inputs) + i, port.parameter))
    usage = " ".join(
        [f"{p.parameter.upper()}.bin" for p in model.inputs]
        + [f"{p.parameter.upper()}.bin" for p in model.outputs]
    )
    values = {
        "name": name,
        "macro": macro,
        "program": model.program,
        "usage": usage,
        "buffers": "\n".join(buffers),
        "arguments": ", ".join(p.parameter for p in (*model.inputs, *model.outputs)),
        "files": str(len(model.inputs) + len(model.outputs)),
        "read_inputs": "\n".join(reads),
        "write_outputs": "\n".join(writes),
    }
    main = Template((_TEMPLATES / "main.c.in").read_text()).substitute(values)
    (model.directory / "main.c").write_text(main)
    headers = sorted(p.name for p in model.directory.glob("*.h"))
    makefile = Template((_TEMPLATES / "Makefile.in").read_text()).substitute(
        name=name,
        program=model.program,
        cflags=" ".join(CFLAGS),
        ldlibs=" ".join(LDLIBS),
        sources=" ".join(model.model_sources),
        headers=" ".join(headers),
    )
    (model.directory / "Makefile").write_text(makefile)


def _file_call(function: str, argument: int, buffer: str) -> str:
    return (
        f"    if (!{function}(argv[{argument}], {buffer}, sizeof {buffer})) {{\n"
        "        return 2;\n"
        "    }"
    )
