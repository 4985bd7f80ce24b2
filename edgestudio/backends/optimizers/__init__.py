"""Optimizers (quantization, compression, pruning), one module each; see ``base``."""
