"""Converters, optimizers and runtimes: one module each, found by the registry. Qt-free."""
