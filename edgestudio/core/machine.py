"""The machine a measurement ran on: CPU model, cores, ISA flags, memory, load and clock, from /proc and /sys
(standard library only; what a platform does not expose is None). Recorded with every benchmark, because the
best variant differs by CPU and a loaded machine measures slow."""

from __future__ import annotations

import os
import platform
from pathlib import Path
from typing import Any

ISA_FLAGS = ("sse4_2", "avx", "avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16", "amx_tile", "amx_int8",
             "asimd", "asimddp", "asimdhp", "sve", "i8mm", "bf16", "neon", "vfpv4")


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


def cpu_mhz() -> float | None:
    """The current clock of CPU 0 (cpufreq where the kernel has it, else /proc/cpuinfo's figure)."""
    try:
        return int(Path("/sys/devices/system/cpu/cpu0/cpufreq/scaling_cur_freq").read_text()) / 1000.0
    except (OSError, ValueError):
        pass
    mhz = _cpuinfo().get("cpu mhz")
    try:
        return float(mhz) if mhz else None
    except ValueError:
        return None


def load_average() -> list[float] | None:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except (OSError, AttributeError):
        return None


def default_threads() -> int:
    """The thread count every runtime gets unless the user says otherwise: the CPUs this process may use (LiteRT's
    own default of 1 made it look half as fast next to runtimes using every core)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def machine_facts() -> dict[str, Any]:
    """What a benchmark result carries about where and under what load it was measured."""
    return {"cpu": cpu_model(), "cores": os.cpu_count(), "usable_cpus": default_threads(), "isa": isa_flags(),
            "cpu_mhz": cpu_mhz(), "load_average": load_average(), "machine": platform.machine()}
