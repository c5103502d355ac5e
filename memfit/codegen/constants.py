"""The constant data of a generated model: every weight, bias and kernel parameter array.

Each array becomes one ``const`` object in ``<name>_weights.c``, a tagged union of its bytes
and its typed values::

    union mdl_c3_data { unsigned char bytes[865]; float values[216]; };
    MF_ALIGNAS(64) const union mdl_c3_data mdl_c3 = {"\\000\\000\\200\\077..."};

and the kernels read ``mdl_c3.values``. The bytes are written as one string literal of octal
escapes, which compilers parse an order of magnitude faster (and in a sixth of the memory)
than a list of float literals, so models with tens of millions of weights still compile. The
bytes are the host's little-endian representation; ``<name>_run`` refuses to run on a
big-endian machine (``MF_ERROR_BYTE_ORDER``), and GCC-compatible compilers refuse to compile
there. Reading the typed member of a union initialized through its byte member is defined
behaviour in C99 (6.5.2.3, footnote 82).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from memfit.codegen.identifiers import c_comment
from memfit.errors import InternalError
from memfit.ir.core import Tensor
from memfit.ir.printer import format_type

C_TYPES = {
    np.dtype(np.float32): "float",
    np.dtype(np.int8): "int8_t",
    np.dtype(np.uint8): "uint8_t",
    np.dtype(np.int16): "int16_t",
    np.dtype(np.int32): "int32_t",
    np.dtype(np.int64): "int64_t",
    np.dtype(np.bool_): "uint8_t",
}
"""NumPy dtype -> the C type kernels read it as."""

ALIGNMENT = 64
"""Bytes every constant array and the arena start on: a cache line, so that where a buffer lies
in memory never splits a kernel's vector loads and stores over two lines (that can slow a
kernel several times) and every build of a plan runs at the same speed."""
_BYTES_PER_LINE = 48

# Every byte as a three-digit octal escape: fixed width, and never merged with the next byte.
_OCTAL = np.array([list(f"\\{value:03o}".encode()) for value in range(256)], dtype=np.uint8)


def c_type(dtype: np.dtype) -> str:
    try:
        return C_TYPES[np.dtype(dtype)]
    except KeyError:
        raise InternalError(f"no C type for constant dtype {dtype}") from None


@dataclass(frozen=True)
class ConstantArray:
    """One array in ``<name>_weights.c``: its C symbol, data and what it is."""

    symbol: str
    data: np.ndarray
    description: str

    @property
    def c_type(self) -> str:
        return c_type(self.data.dtype)

    @property
    def count(self) -> int:
        return max(int(self.data.size), 1)

    def declaration(self) -> str:
        """The union type and the ``extern`` declaration, for the header."""
        size = self.count * self.data.dtype.itemsize
        return (
            f"/* {c_comment(self.description)} */\n"
            f"union {self.symbol}_data {{ unsigned char bytes[{size + 1}]; "
            f"{self.c_type} values[{self.count}]; }};\n"
            f"extern const union {self.symbol}_data {self.symbol};\n"
        )

    def definition(self) -> Iterator[str]:
        """The definition, in pieces (a large model's weights are hundreds of megabytes)."""
        data = np.ascontiguousarray(self.data)
        if data.dtype == np.bool_:
            data = data.astype(np.uint8)
        raw = np.frombuffer(data.tobytes() or b"\0" * data.dtype.itemsize, dtype=np.uint8)
        yield f"MF_ALIGNAS({ALIGNMENT}) const union {self.symbol}_data {self.symbol} = {{\n"
        for start in range(0, raw.size, _BYTES_PER_LINE):
            yield '    "' + _OCTAL[raw[start : start + _BYTES_PER_LINE]].tobytes().decode() + '"\n'
        yield "};\n"


class ConstantTable:
    """The arrays a model's code refers to, each emitted once, named ``<prefix>_c<k>``."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self.arrays: list[ConstantArray] = []
        self._by_tensor: dict[str, str] = {}

    def tensor(self, tensor: Tensor) -> str:
        """The C expression of constant ``tensor``'s values (a typed pointer)."""
        if tensor.data is None:
            raise InternalError(f"tensor {tensor.name} is not a constant")
        symbol = self._by_tensor.get(tensor.name)
        if symbol is None:
            symbol = self._add(tensor.data, f"{tensor.name}: {format_type(tensor)}")
            self._by_tensor[tensor.name] = symbol
        return f"{symbol}.values"

    def array(self, data: np.ndarray, description: str) -> str:
        """The C expression of a kernel parameter array (e.g. per-channel multipliers)."""
        return f"{self._add(np.asarray(data), description)}.values"

    def _add(self, data: np.ndarray, description: str) -> str:
        c_type(data.dtype)  # refuse types C has no name for before anything is written
        symbol = f"{self.prefix}_c{len(self.arrays)}"
        self.arrays.append(ConstantArray(symbol, data, description))
        return symbol

    @property
    def multi_byte(self) -> bool:
        """True when some array's values depend on the byte order."""
        return any(a.data.dtype.itemsize > 1 for a in self.arrays)

    @property
    def nbytes(self) -> int:
        return sum(a.data.nbytes for a in self.arrays)
