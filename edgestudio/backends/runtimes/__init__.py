"""Inference runtimes, one module each; see :mod:`edgestudio.backends.runtimes.base`."""

from edgestudio.backends.runtimes.base import (
    RUNTIMES,
    DeviceInfo,
    Runtime,
    Session,
    get_runtime,
    list_devices,
    runtime_for_format,
    runtimes_for_format,
)

__all__ = ["RUNTIMES", "DeviceInfo", "Runtime", "Session", "get_runtime", "list_devices", "runtime_for_format",
           "runtimes_for_format"]
