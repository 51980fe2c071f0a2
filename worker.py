"""``arq worker.WorkerSettings``: the same worker as ``ccbb worker`` (which also starts the embedded
Redis when ``REDIS_URL`` is not set)."""

from ccbb.worker import WorkerSettings

__all__ = ["WorkerSettings"]
