"""The one exception type for problems a user can cause and fix."""


class DensePoseGazeError(Exception):
    """A problem with the user's input: the message says what is wrong and what to do.

    Widgets show the message as a notification, the command line prints it and
    exits non-zero. Raise it only for things a user can fix (a missing file, a
    bad value); programming errors stay ordinary exceptions.
    """
