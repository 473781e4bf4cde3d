"""The command line's cluster options (``--workers``, ``--scheduler``, ``--chunk-size``) and what they ask for."""

from __future__ import annotations

import argparse

from ..cluster.settings import ClusterSettings
from .arguments import positive_int

__all__ = ["add_cluster_options", "cluster_settings"]


def add_cluster_options(group: argparse._ArgumentGroup) -> None:
    """Add ``--workers``, ``--scheduler`` and ``--chunk-size`` to a parser's argument group."""
    where = group.add_mutually_exclusive_group()
    where.add_argument("--workers", type=positive_int, metavar="N",
                       help="compute on a local Dask cluster of N worker processes (one per GPU with dask-cuda "
                       "installed, else CPU processes sharing the cores); needs the [cluster] extra")
    where.add_argument("--scheduler", metavar="ADDRESS",
                       help="compute on an existing Dask cluster: its scheduler's address (tcp://host:8786) or "
                       "scheduler file (dask scheduler --scheduler-file FILE); the export and the results "
                       "folder must be on a file system every worker sees at the same path")
    group.add_argument("--chunk-size", type=positive_int, metavar="FRAMES",
                       help="frames per task on a cluster (default: chosen from the frames and the workers)")


def cluster_settings(args: argparse.Namespace) -> ClusterSettings | None:
    """The cluster the parsed options ask for; None for a run in this process."""
    if args.workers is None and args.scheduler is None:
        return None
    return ClusterSettings(workers=args.workers, scheduler=args.scheduler, chunk_size=args.chunk_size)
