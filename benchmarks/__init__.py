"""Benchmarks that regenerate the tables quoted in the README (``python -m benchmarks.NAME``)."""
