"""One reader per model format: what :func:`edgestudio.core.inspection.inspect_model` dispatches to."""
