"""Analyses that return result objects: memory, MACs."""
