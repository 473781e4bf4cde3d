"""The exit codes of ``densepose-gaze``, the same for every command."""

from __future__ import annotations

__all__ = ["EXIT_OK", "EXIT_FAILED", "EXIT_ERROR", "EXIT_INTERRUPTED"]

#: Everything went well.
EXIT_OK = 0
#: Some recordings failed (the others were processed), a results store has damaged frames, or a cached
#: weights file is corrupt.
EXIT_FAILED = 1
#: A usage error, or a problem that stopped everything (its message on stderr, no traceback).
EXIT_ERROR = 2
#: Stopped by Ctrl-C (128 + SIGINT, as shells report it).
EXIT_INTERRUPTED = 130
