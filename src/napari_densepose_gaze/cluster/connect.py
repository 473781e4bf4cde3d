"""Reaching a Dask cluster: a local one this run starts, or an existing one by its scheduler."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import DensePoseGazeError
from .settings import ClusterSettings

if TYPE_CHECKING:
    from distributed import Client

__all__ = ["CONNECT_TIMEOUT_S", "connect"]

#: How long to try to reach a scheduler before saying it cannot be reached.
CONNECT_TIMEOUT_S = 10


def connect(settings: ClusterSettings, device: str) -> tuple[Client, Any]:
    """A client of the cluster ``settings`` names, and the local cluster started for it (None for an existing one).

    An unreachable scheduler is a :class:`DensePoseGazeError` that names it.
    """
    try:
        from distributed import Client
    except ImportError as exc:
        raise DensePoseGazeError(
            "--workers and --scheduler need Dask's distributed scheduler, which is not installed: "
            "pip install 'napari-densepose-gaze[cluster]' (or pip install 'dask[distributed]')."
        ) from exc
    if settings.scheduler is None:
        cluster = _local_cluster(int(settings.workers or 1), device)
        return Client(cluster), cluster
    where = settings.scheduler
    file = Path(where).expanduser()
    try:
        if file.suffix == ".json" or file.is_file():
            if not file.is_file():
                raise DensePoseGazeError(f"--scheduler {where}: there is no scheduler file there. Pass the file "
                                         "`dask scheduler --scheduler-file` wrote, or the scheduler's address.")
            return Client(scheduler_file=str(file), timeout=CONNECT_TIMEOUT_S), None
        return Client(where, timeout=CONNECT_TIMEOUT_S), None
    except (OSError, TimeoutError, ValueError) as exc:
        raise DensePoseGazeError(
            f"Cannot reach the Dask scheduler at {where} ({exc}). Check that the scheduler is running "
            "(dask scheduler) and that this machine can reach its address and port (tcp://HOST:8786), "
            "then run again; or use --workers N for a cluster on this machine."
        ) from exc


def _local_cluster(workers: int, device: str) -> Any:
    """One worker per GPU with dask-cuda (at most ``workers``), else ``workers`` CPU processes sharing the cores."""
    gpus = _gpus_for_dask_cuda(device)
    if gpus:
        from dask_cuda import LocalCUDACluster

        return LocalCUDACluster(n_workers=min(workers, gpus), threads_per_worker=1, dashboard_address=":0",
                                silence_logs=logging.ERROR)
    from distributed import LocalCluster

    # Each worker runs torch with as many threads as it has (cluster/worker.py).
    threads = max(1, (os.cpu_count() or 1) // workers)
    return LocalCluster(n_workers=workers, threads_per_worker=threads, processes=True, dashboard_address=":0",
                        silence_logs=logging.ERROR)


def _gpus_for_dask_cuda(device: str) -> int:
    if device not in ("auto", "cuda"):
        return 0
    try:
        import dask_cuda  # noqa: F401
    except ImportError:
        return 0
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0
