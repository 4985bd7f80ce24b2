"""Registries of backends. A registry imports exactly the modules the backend catalog lists
(:mod:`edgestudio.core.catalog`), on first use; importing one is cheap because heavy libraries (tensorflow,
openvino, onnxruntime) are only imported inside the functions that need them. Each module registers its
class(es) with ``@REGISTRY.register``.
"""

from __future__ import annotations

import importlib
import importlib.util
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
    def env(cls) -> str:
        """The Python environment the catalog runs this backend in ("default": the app's)."""
        from edgestudio.core.catalog import module_env

        return module_env(cls.__module__)

    @classmethod
    def missing_packages(cls) -> list[str]:
        """What is missing to use it from here: packages, or (for a backend of another environment) that
        environment, whose packages are checked when it is created."""
        from edgestudio.core.catalog import current_env, env_ready

        env = cls.env()
        if env not in ("default", current_env()):
            return [] if env_ready(env) else [f"the '{env}' environment (edgestudio envs create {env})"]
        return packages_available(cls.requires)

    @classmethod
    def available(cls) -> bool:
        return not cls.missing_packages()


class Registry(Generic[T]):
    def __init__(self, package: str, key: Callable[[type[T]], str]) -> None:
        self._package = package
        self._kind = package.rsplit(".", 1)[-1]  # runtimes, converters, optimizers: the catalog's lists
        self._key = key
        self._items: dict[str, type[T]] = {}
        self._discovered = False
        self._imported: list[str] = []
        self._ever_imported: set[str] = set()

    def register(self, cls: type[T]) -> type[T]:
        self._items[self._key(cls)] = cls
        return cls

    def _discover(self) -> None:
        from edgestudio.core import catalog

        wanted = catalog.modules(self._kind)
        if self._discovered and wanted == self._imported:
            return
        for module in wanted:  # catalog order; an extra catalog file may add modules later
            try:
                importlib.import_module(module)
            except ImportError as exc:  # an extra catalog entry whose module is not importable here
                raise catalog.CatalogError(None, f"catalog module {module} cannot be imported ({exc})") from None
        self._imported = wanted
        self._ever_imported.update(wanted)
        self._discovered = True

    def all(self) -> dict[str, type[T]]:
        """The registered classes, less those of catalog modules the catalog no longer lists (an extra catalog
        file that went away); classes registered directly stay."""
        self._discover()
        gone = self._ever_imported - set(self._imported)
        return {k: c for k, c in self._items.items() if c.__module__ not in gone}

    def get(self, name: str) -> type[T]:
        items = self.all()
        if name not in items:
            raise KeyError(name)
        return items[name]
