"""Graph rewrites. Importing this package registers every pass."""

from memfit.passes import fold_constants, fold_pad, remove_identity
from memfit.passes.manager import PASSES, PassResult, register_pass, run_pipeline

CANONICALIZE = ("fold-constants", "remove-identity", "fold-pad", "prune")
"""The pipeline every frontend's graph goes through at import."""


def canonicalize(graph):  # type: ignore[no-untyped-def]
    """Run the canonicalization pipeline (in place) and return the graph."""
    return run_pipeline(graph, CANONICALIZE)


__all__ = [
    "CANONICALIZE",
    "PASSES",
    "PassResult",
    "canonicalize",
    "fold_constants",
    "fold_pad",
    "register_pass",
    "remove_identity",
    "run_pipeline",
]
