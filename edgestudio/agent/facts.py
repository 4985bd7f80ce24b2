"""What a device is: CPU model, cores, ISA flags, memory, OS, runtime versions and the devices they see, and the
temperature where the kernel exposes it. Standard library only (read from /proc and /sys where they exist)."""

from __future__ import annotations

import os
import platform
import sys
from pathlib import Path
from typing import Any

ISA_FLAGS = ("sse4_2", "avx", "avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16", "amx_tile", "amx_int8",
             "asimd", "asimddp", "asimdhp", "sve", "i8mm", "bf16", "neon", "vfpv4")
RUNTIME_DISTS = ("onnxruntime", "onnxruntime-gpu", "ai-edge-litert", "tflite-runtime", "openvino", "numpy")


def _cpuinfo() -> dict[str, str]:
    out: dict[str, str] = {}
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            key = key.strip().lower()
            if key and key not in out:
                out[key] = value.strip()
    except OSError:
        pass
    return out


def cpu_model() -> str:
    info = _cpuinfo()
    return info.get("model name") or info.get("hardware") or info.get("cpu model") or platform.processor() or \
        platform.machine()


def isa_flags() -> list[str]:
    info = _cpuinfo()
    have = set((info.get("flags") or info.get("features") or "").split())
    return [f for f in ISA_FLAGS if f in have]


def memory_bytes() -> int | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None


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

    return [d for d in device_dicts() if d.get("runtime") not in ("ort-web", "tfjs")]  # browsers: not remote


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
