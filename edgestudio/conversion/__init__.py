"""The conversion engine: plan a path of converters, run it hop by hop, check every hop's numbers."""

from edgestudio.conversion.engine import ConversionReport, StepReport, convert_model
from edgestudio.conversion.planner import ConversionPlan, Hop, plan_conversion

__all__ = ["ConversionPlan", "ConversionReport", "Hop", "StepReport", "convert_model", "plan_conversion"]
