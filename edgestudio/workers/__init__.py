"""The process pool: jobs run in spawned worker processes, never in the GUI process."""

from edgestudio.workers.pool import WorkerPool

__all__ = ["WorkerPool"]
