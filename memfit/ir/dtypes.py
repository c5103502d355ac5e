"""Element types of IR tensors."""

from __future__ import annotations

import enum

import numpy as np


class DType(enum.Enum):
    FLOAT32 = "float32"
    INT8 = "int8"
    UINT8 = "uint8"
    INT16 = "int16"
    INT32 = "int32"
    INT64 = "int64"
    BOOL = "bool"

    @property
    def numpy(self) -> np.dtype:
        return np.dtype(self.value)

    @property
    def itemsize(self) -> int:
        return self.numpy.itemsize

    @classmethod
    def from_numpy(cls, dtype: np.dtype | type) -> DType:
        return cls(np.dtype(dtype).name)

    def __str__(self) -> str:
        return self.value
