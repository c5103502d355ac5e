"""Pass registry and pipeline runner.

A pass is a function ``graph -> PassResult`` that rewrites the graph in place and says whether
it changed anything. Passes register under a kebab-case name so a pipeline can be given as a
list of names; when a pass breaks an invariant, the error names it and the passes before it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from memfit.errors import InternalError, MemfitError
from memfit.ir.core import Graph


@dataclass(frozen=True)
class PassResult:
    graph: Graph
    modified: bool


Pass = Callable[[Graph], PassResult]
PASSES: dict[str, Pass] = {}


def register_pass(name: str) -> Callable[[Pass], Pass]:
    def decorate(fn: Pass) -> Pass:
        PASSES[name] = fn
        return fn

    return decorate


def run_pipeline(graph: Graph, names: Sequence[str]) -> Graph:
    """Run the named passes in order; check the graph after each one."""
    done: list[str] = []
    for name in names:
        try:
            result = PASSES[name](graph)
            result.graph.topological_check()
        except MemfitError:
            raise
        except Exception as exc:
            before = ", ".join(done) or "none"
            raise InternalError(f"pass {name} failed (passes before it: {before}): {exc}") from exc
        graph = result.graph
        done.append(name)
    return graph
