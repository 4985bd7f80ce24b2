"""Model converters, one module each; see :mod:`edgestudio.backends.converters.base`."""

from edgestudio.backends.converters.base import CONVERTERS, ConversionError, Converter, ConvertOptions

__all__ = ["CONVERTERS", "ConversionError", "ConvertOptions", "Converter"]
