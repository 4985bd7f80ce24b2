"""Every execution target this machine knows, and the executor for one by name.

Names: ``local`` (this Python's worker pool) and ``env:NAME`` (a Python environment; a bare ``NAME`` works
too). Remote agents, browsers and clusters add their names here as they land.
"""

from __future__ import annotations

import sys

from edgestudio.core.errors import UsageError
from edgestudio.execution.base import Executor, TargetInfo

LOCAL = "local"


def list_targets() -> list[TargetInfo]:
    from edgestudio.execution.envs import list_envs, target_info

    local = TargetInfo(LOCAL, "local", sys.executable, "worker processes of this Python (EdgeStudio's own)")
    return [local, *(target_info(e) for e in list_envs())]


def env_name(target: str | None) -> str | None:
    """The environment a target name means (None: the local pool)."""
    if not target or target == LOCAL:
        return None
    if target.startswith("env:"):
        return target[4:]
    if ":" in target:
        raise UsageError(None, f"unknown execution target {target!r} (known: "
                               + ", ".join(t.name for t in list_targets()) + ")")
    return target


def executor_for(target: str | None, *, max_workers: int | None = None, **pool_options: object) -> Executor:
    """An executor for ``target`` (``local`` when None)."""
    env = env_name(target)
    if env is None:
        from edgestudio.workers.pool import WorkerPool

        return WorkerPool(max_workers, **pool_options)  # type: ignore[arg-type]
    from edgestudio.execution.envs import EnvExecutor

    return EnvExecutor(env, max_workers or 1)
