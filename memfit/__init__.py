"""memfit: fit deep neural network inference in tight memory, fast."""

from memfit.api import inspect, load, run
from memfit.errors import MemfitError

__version__ = "0.1.0"
__all__ = ["MemfitError", "inspect", "load", "run"]
