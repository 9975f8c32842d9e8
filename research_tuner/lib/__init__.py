"""Plain-Python library layer: every step of the pipeline, callable and testable without Dagster."""
