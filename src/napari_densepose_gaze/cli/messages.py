"""The core library's advice, said the way the command line offers it.

The store's messages are written for the Python API ("pass overwrite=True");
the command line has no such switch, so that advice becomes what a user of the
command line can do (delete the folder, choose another --output). A store
that cannot be made because its folder name is too long gets a message that
says so instead of the file system's errno.
"""

from __future__ import annotations

import errno
import re
from pathlib import Path

from ..errors import DensePoseGazeError

__all__ = ["for_the_command_line"]

# (API advice, what the command line says instead); each pattern matches a sentence part of store.py's messages
_API_ADVICE = (
    (re.compile(r"pass overwrite=True to delete (?:the store|the stored results)( \(hand edits included\))? "
                r"and start over"),
     r"delete that folder\1 to start over"),
    (re.compile(r"Create it anew with overwrite=True or choose another folder"),
     "Delete that folder to make it anew, or choose another --output"),
    (re.compile(r"Open it to resume \(exist_ok=True\), pass overwrite=True to delete it and start over, or choose "
                r"another folder"),
     "Run again to resume it, delete that folder to start over, or choose another --output"),
    (re.compile(r"Choose another folder"), "Choose another --output"),
)


def for_the_command_line(error: DensePoseGazeError) -> str:
    """The message of ``error`` with its advice in the command line's terms."""
    cause = error.__cause__
    if isinstance(cause, OSError) and cause.errno == errno.ENAMETOOLONG:
        where = Path(cause.filename).parent if cause.filename else "the results folder"
        return (f"The results cannot be stored: a file name made from the recording folder's name is too long "
                f"for the file system (in {where}). Rename the recording folder to a shorter name, or run it "
                "on its own with --output naming a shorter results folder.")
    message = str(error)
    for advice, instead in _API_ADVICE:
        message = advice.sub(instead, message)
    return message
