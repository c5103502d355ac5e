"""Primitive selection (TASO, Wen et al., arXiv 2005.10709): a library of convolution
primitives and layouts (``primitives``), their costs measured on this machine (``profile``),
an ILP that picks one per layer under a memory budget (``ilp``), the memory/latency Pareto
front and its baselines (``pareto``), and code generation of a chosen configuration
(``lowering``, ``configure``).
"""
