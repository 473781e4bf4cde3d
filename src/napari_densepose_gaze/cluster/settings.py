"""Where a cluster run computes: a local cluster of worker processes, or an existing cluster's scheduler."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["ClusterSettings"]


@dataclass(frozen=True)
class ClusterSettings:
    """Where a run computes: a local cluster of ``workers`` processes, or the cluster of ``scheduler``."""

    workers: int | None = None
    scheduler: str | None = None  # tcp://host:port, or a scheduler file written by `dask scheduler --scheduler-file`
    chunk_size: int | None = None  # frames per task; None: chosen from the work and the number of workers

    def __post_init__(self) -> None:
        if self.workers is not None and self.scheduler is not None:
            raise ValueError("give workers (a local cluster) or scheduler (an existing one), not both")
        if self.workers is None and self.scheduler is None:
            raise ValueError("give workers (a local cluster) or scheduler (an existing one)")
