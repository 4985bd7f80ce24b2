"""Registries of backends. Adding a backend is adding one module to its package.

Modules are discovered with ``pkgutil`` and imported on first use; importing one is cheap because heavy
libraries (tensorflow, openvino, onnxruntime) are only imported inside the functions that need them.
"""

from __future__ import annotations

import importlib
import importlib.util
import pkgutil
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")


def packages_available(names: tuple[str, ...]) -> list[str]:
    """Return the names of the required packages that are *missing* (without importing them)."""
    return [n for n in names if importlib.util.find_spec(n) is None]


class Requirements:
    """What a backend needs installed: ``requires`` lists importable module names."""

    requires: tuple[str, ...] = ()

    @classmethod
    def missing_packages(cls) -> list[str]:
        return packages_available(cls.requires)

    @classmethod
    def available(cls) -> bool:
        return not cls.missing_packages()


class Registry(Generic[T]):
    def __init__(self, package: str, key: Callable[[type[T]], str]) -> None:
        self._package = package
        self._key = key
        self._items: dict[str, type[T]] = {}
        self._discovered = False

    def register(self, cls: type[T]) -> type[T]:
        self._items[self._key(cls)] = cls
        return cls

    def _discover(self) -> None:
        if self._discovered:
            return
        self._discovered = True
        pkg = importlib.import_module(self._package)
        for mod in pkgutil.iter_modules(pkg.__path__):
            if not mod.name.startswith("_") and mod.name != "base":
                importlib.import_module(f"{self._package}.{mod.name}")

    def all(self) -> dict[str, type[T]]:
        self._discover()
        return dict(self._items)

    def get(self, name: str) -> type[T]:
        items = self.all()
        if name not in items:
            raise KeyError(name)
        return items[name]
