"""What a device is: CPU model, cores, ISA flags, memory, OS, runtime versions and the devices they see, and the
temperature where the kernel exposes it. Standard library only (read from /proc and /sys where they exist)."""

from __future__ import annotations

import os
import platform
import sys
from pathlib import Path
from typing import Any

from edgestudio.core.machine import cpu_model, isa_flags, memory_bytes

RUNTIME_DISTS = ("onnxruntime", "onnxruntime-gpu", "ai-edge-litert", "tflite-runtime", "openvino", "numpy")


def temperatures_c() -> dict[str, float]:
    """Thermal zones the kernel exposes (a Pi's SoC, a Jetson's CPU/GPU); empty where none is readable."""
    out: dict[str, float] = {}
    for zone in sorted(Path("/sys/class/thermal").glob("thermal_zone*")):
        try:
            kind = (zone / "type").read_text().strip()
            out[kind or zone.name] = int((zone / "temp").read_text().strip()) / 1000.0
        except (OSError, ValueError):
            continue
    return out


def runtime_versions() -> dict[str, str]:
    from importlib import metadata

    out = {}
    for dist in RUNTIME_DISTS:
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            continue
    return out


def runtime_devices() -> list[dict[str, str]]:
    """Every (runtime, device) the runtimes installed here see (imports only the installed runtimes)."""
    from edgestudio.backends.runtimes.base import device_dicts

    browser = browser_runtimes()
    return [d for d in device_dicts() if d.get("runtime") not in browser]


def browser_runtimes() -> set[str]:
    """The runtimes that run in a browser on the studio's machine (``Runtime.in_browser``): never on a device agent."""
    from edgestudio.backends.runtimes.base import RUNTIMES

    return {name for name, cls in RUNTIMES.all().items() if cls.in_browser}


def device_facts(*, with_devices: bool = True) -> dict[str, Any]:
    from edgestudio import __version__

    facts: dict[str, Any] = {
        "hostname": platform.node(), "machine": platform.machine(), "cpu": cpu_model(), "cores": os.cpu_count(),
        "isa": isa_flags(), "memory_bytes": memory_bytes(), "os": platform.platform(),
        "python": sys.version.split()[0], "edgestudio": __version__, "runtimes": runtime_versions(),
        "temperature_c": temperatures_c()}
    if with_devices:
        facts["devices"] = runtime_devices()
    return facts
