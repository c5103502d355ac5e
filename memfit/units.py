"""Byte sizes as users write them: ``65536``, ``96KiB``, ``1.5MB``, ``2 MiB``."""

from __future__ import annotations

import re

from memfit.errors import UsageError

UNITS = {
    "": 1,
    "b": 1,
    "kb": 1000,
    "mb": 1000**2,
    "gb": 1000**3,
    "kib": 1024,
    "mib": 1024**2,
    "gib": 1024**3,
    "k": 1024,
    "m": 1024**2,
    "g": 1024**3,
}
"""Decimal units (kB, MB, GB), binary units (KiB, MiB, GiB) and the short K, M, G (binary,
as linker scripts and MCU datasheets use them)."""

ACCEPTED = "a positive number of bytes with an optional unit: 65536, 96KiB, 96K, 1.5MB, 2MiB"

_SIZE = re.compile(r"^\s*([0-9]+(?:\.[0-9]*)?|\.[0-9]+)\s*([a-zA-Z]*)\s*$")


def parse_size(text: str, what: str = "size") -> int:
    """Bytes in ``text``, rounded down to a whole byte; a UsageError naming the accepted forms
    for anything else (a negative or zero size, an unknown unit)."""
    match = _SIZE.match(text)
    if match is None:
        raise UsageError(f"{what} {text!r} is not a size; give {ACCEPTED}")
    number, unit = match.groups()
    factor = UNITS.get(unit.lower())
    if factor is None:
        raise UsageError(f"{what} {text!r} has the unknown unit {unit!r}; give {ACCEPTED}")
    size = int(float(number) * factor)
    if size <= 0:
        raise UsageError(f"{what} {text!r} is not positive; give {ACCEPTED}")
    return size


def format_size(size: int) -> str:
    """``1,404,928 bytes (1.34 MiB)``: exact bytes, with a binary unit to read them by."""
    for unit, factor in (("GiB", 1024**3), ("MiB", 1024**2), ("KiB", 1024)):
        if size >= factor:
            return f"{size:,} bytes ({size / factor:.2f} {unit})"
    return f"{size:,} bytes"
