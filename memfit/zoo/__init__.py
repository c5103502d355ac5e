"""Built-in networks, built in code with seeded weights (float32 and int8).

Use them wherever a model path is accepted as ``zoo:NAME``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from memfit.errors import ModelFormatError
from memfit.ir.core import Graph


@dataclass(frozen=True)
class ZooEntry:
    description: str
    build: Callable[[], Graph]


ZOO: dict[str, ZooEntry] = {}


def register(name: str, description: str) -> Callable[[Callable[[], Graph]], Callable[[], Graph]]:
    def decorate(fn: Callable[[], Graph]) -> Callable[[], Graph]:
        ZOO[name] = ZooEntry(description, fn)
        return fn

    return decorate


def build(name: str) -> Graph:
    """Build the zoo model ``name`` (e.g. ``mobilenetv2`` or ``mobilenetv2-int8``)."""
    entry = ZOO.get(name)
    if entry is None:
        known = ", ".join(ZOO) or "none"
        raise ModelFormatError(f"zoo:{name} is not a built-in model; known: {known} (memfit zoo)")
    return entry.build()


# Importing the catalog registers every built-in network.
from memfit.zoo import catalog  # noqa: E402

__all__ = ["ZOO", "ZooEntry", "build", "catalog", "register"]
