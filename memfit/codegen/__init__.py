"""C code generation: a C99 program per model, with one static arena at the planned size."""
