"""Progress and cancellation as plain callables and tokens; the GUI only adapts them to signals."""

from __future__ import annotations

import threading
from typing import Any, Protocol

from edgestudio.core.errors import Cancelled


class ProgressCallback(Protocol):
    def __call__(self, fraction: float, message: str = "") -> None: ...


def noop_progress(fraction: float, message: str = "") -> None:
    """A progress callback that ignores everything."""


class CancelToken:
    """Cooperative cancellation: the job calls :meth:`check` between steps.

    ``event`` may be a ``threading.Event`` or a ``multiprocessing.Event`` (shared with a worker process).
    """

    def __init__(self, event: Any | None = None) -> None:
        self._event = event if event is not None else threading.Event()

    def cancel(self) -> None:
        self._event.set()

    @property
    def cancelled(self) -> bool:
        return bool(self._event.is_set())

    def check(self) -> None:
        if self._event.is_set():
            raise Cancelled("cancelled")

