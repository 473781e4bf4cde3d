"""DensePose over a whole study on a Dask cluster (``densepose-gaze run EXPORT --workers N / --scheduler ADDRESS``).

The unit of work is a chunk of frames of one recording (:mod:`.chunks`); each
worker process keeps one loaded model and computes chunks one at a time,
decoding their frames itself and writing them into the recording's one results
store (:mod:`.worker`); :mod:`.connect` starts or reaches the cluster. Stores on
a cluster are shared between hosts: every writer appends to a log segment of its
own (:func:`~..store_log.share_between_hosts`). The command line's side (options,
submitting the chunks, progress and summary) is :mod:`..cli.cluster_run`.

Importing this package does not import Dask (the ``cluster`` extra); running does.
"""

from __future__ import annotations

from .settings import ClusterSettings

__all__ = ["ClusterSettings"]
