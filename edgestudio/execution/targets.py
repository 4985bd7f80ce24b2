"""Every execution target this machine knows, and the executor for one by name.

Names: ``local`` (this Python's worker pool), ``env:NAME`` (a Python environment; a bare ``NAME`` works too) and
``agent:NAME`` (a remote device running ``edgestudio agent serve``; a bare registered device name works too) and
``ray`` / ``ray:ADDRESS`` (a local Ray cluster started on demand, or a running one).
"""

from __future__ import annotations

import sys

from edgestudio.core.errors import UsageError
from edgestudio.execution.base import Executor, TargetInfo

LOCAL = "local"


def list_targets() -> list[TargetInfo]:
    from edgestudio.execution.envs import list_envs, target_info
    from edgestudio.execution.remote import AGENT_PREFIX, registered_devices

    local = TargetInfo(LOCAL, "local", sys.executable, "worker processes of this Python (EdgeStudio's own)")
    agents = [TargetInfo(AGENT_PREFIX + d.name, "agent", "", f"remote device {d.name} ({d.host}:{d.port})",
                         True, "registered (`edgestudio devices` checks it)") for d in registered_devices()]
    return [local, *(target_info(e) for e in list_envs()), *agents]


def agent_name(target: str | None) -> str | None:
    """The registered device a target name means (``agent:NAME``, or a bare NAME that is a device)."""
    from edgestudio.execution.remote import AGENT_PREFIX, registered_devices

    if not target:
        return None
    if target.startswith(AGENT_PREFIX):
        return target[len(AGENT_PREFIX):]
    if ":" not in target and target != LOCAL and any(d.name == target for d in registered_devices()):
        return target
    return None


def env_name(target: str | None) -> str | None:
    """The environment a target name means (None: the local pool)."""
    if not target or target == LOCAL:
        return None
    if target.startswith("env:"):
        return target[4:]
    if target == "ray" or target.startswith("ray:"):
        return None
    if ":" in target:
        raise UsageError(None, f"unknown execution target {target!r} (known: "
                               + ", ".join(t.name for t in list_targets()) + ")")
    return target


def executor_for(target: str | None, *, max_workers: int | None = None, **pool_options: object) -> Executor:
    """An executor for ``target`` (``local`` when None)."""
    if target and (target == "ray" or target.startswith("ray:")):
        from edgestudio.execution.ray_executor import RayExecutor

        return RayExecutor(target[4:] or None if target.startswith("ray:") else None)
    device = agent_name(target)
    if device is not None:
        from edgestudio.execution.remote import RemoteExecutor

        return RemoteExecutor(device, max_workers or 1)
    env = env_name(target)
    if env is None:
        from edgestudio.execution.pool import WorkerPool

        return WorkerPool(max_workers, **pool_options)  # type: ignore[arg-type]
    from edgestudio.execution.envs import EnvExecutor

    return EnvExecutor(env, max_workers or 1)
