"""The ``densepose-gaze`` command line: the core library, headless, for whole studies.

``densepose-gaze models`` lists, downloads and checks the zoo weights
(:mod:`.models`); ``densepose-gaze run PATH`` runs DensePose over one recording
or every recording of an export, resumably (:mod:`.run`); ``hits PATH`` writes
the gaze hit tables, ``render PATH`` an overlay video and ``report PATH`` the
dwell-time figures from those results (:mod:`.results`); ``verify PATH`` lists
the damaged frames of the results stores (:mod:`.verify`). Every command but
``models`` goes through the recordings in the one loop of :mod:`.batch`.

Exit codes (:mod:`.codes`): 0 all went well; 1 some recordings failed (the
others were processed), a results store has damaged frames, or a cached file
is corrupt; 2 a usage error or a problem that stopped everything (its message
on stderr, no traceback); 130 stopped by Ctrl-C.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

from .. import __version__
from ..errors import DensePoseGazeError
from .codes import EXIT_ERROR, EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK
from .messages import for_the_command_line
from .models import add_models
from .results import add_hits, add_render, add_report
from .run import add_run
from .verify import add_verify

__all__ = ["main", "build_parser", "EXIT_OK", "EXIT_FAILED", "EXIT_ERROR", "EXIT_INTERRUPTED"]

#: Each adds its subcommand's parser, which names its handler; in the order ``--help`` lists them.
_COMMANDS: tuple[Callable[[argparse._SubParsersAction], None], ...] = (
    add_models, add_run, add_hits, add_render, add_report, add_verify,
)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line with ``argv`` (default: ``sys.argv[1:]``); return the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.handler(args, parser))
    except DensePoseGazeError as exc:
        print(f"densepose-gaze: error: {for_the_command_line(exc)}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print("densepose-gaze: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


def build_parser() -> argparse.ArgumentParser:
    """The parser of every subcommand; ``args.handler(args, parser)`` runs the one given."""
    parser = argparse.ArgumentParser(
        prog="densepose-gaze",
        description="Which body parts of other people a Pupil Labs glasses wearer looked at.",
        epilog="Exit codes: 0 ok, 1 some recordings failed or are damaged, 2 error, 130 interrupted.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(title="commands", dest="command", required=True, metavar="COMMAND")
    for add in _COMMANDS:
        add(commands)
    return parser
