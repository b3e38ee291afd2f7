"""Workflows: explain, the map store, evaluations, training recipes, input sources and results."""
