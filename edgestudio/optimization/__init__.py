"""The optimization engine: bring a model to the optimizer's format, optimize, check, guard accuracy."""

from edgestudio.optimization.engine import OptimizeReport, optimize_model

__all__ = ["OptimizeReport", "optimize_model"]
