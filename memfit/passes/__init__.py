"""Graph rewrites. Importing this package registers every pass."""

from memfit.passes import (
    depthwise_to_conv,  # noqa: F401 (registers the pass)
    fold_batch_norm,
    fold_channel_affine,
    fold_constants,
    fold_pad,
    fold_transposes,
    fuse_activation,
    remove_identity,
)
from memfit.passes.manager import PASSES, PassResult, register_pass, run_pipeline

CANONICALIZE = (
    "fold-constants",
    "remove-identity",
    "fold-pad",
    "fold-transposes",
    "fold-batch-norm",
    "fold-channel-affine",
    "fuse-activation",
    "depthwise-to-conv",
    "prune",
)
"""The pipeline every frontend's graph goes through at import.

Constants first (weights computed in-graph), then layout: transposes the importer added cancel
or fold into weights. Batch norms and per-channel mul/add fold into the convolutions before
them, and only then are activations fused, because a fused activation blocks those folds.
Depthwise convolutions of a one-channel input become ordinary convolutions (the same sums).
"""


def canonicalize(graph):  # type: ignore[no-untyped-def]
    """Run the canonicalization pipeline (in place) and return the graph."""
    return run_pipeline(graph, CANONICALIZE)


__all__ = [
    "CANONICALIZE",
    "PASSES",
    "PassResult",
    "canonicalize",
    "fold_batch_norm",
    "fold_channel_affine",
    "fold_constants",
    "fold_pad",
    "fold_transposes",
    "fuse_activation",
    "register_pass",
    "remove_identity",
    "run_pipeline",
]
