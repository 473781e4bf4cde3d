"""Status lines that wrap inside their dock instead of widening the main window.

A QLabel asks for the width of its longest unbreakable run of text; a path or
a URL in an error message is one such run, thousands of pixels wide, and the
dock (and with it napari's canvas) gives way to it. A status label here wraps,
ignores its text's width when the layout is sized, and gets break chances after
the separators of paths and URLs; the full text stays in its tooltip.
"""

from __future__ import annotations

import re

from qtpy.QtWidgets import QLabel, QSizePolicy

__all__ = ["ZERO_WIDTH_SPACE", "breakable", "make_wrapping", "set_status"]

ZERO_WIDTH_SPACE = "\u200b"
_SEPARATORS = re.compile(r"([/\\_.,:;=&?-])")
_LONG_RUN = re.compile(r"\S{30,}")  # only long runs: short words keep their look


def breakable(text: str) -> str:
    """``text`` with break chances (zero-width spaces) after separators inside long unbroken runs."""
    return _LONG_RUN.sub(lambda run: _SEPARATORS.sub(r"\1" + ZERO_WIDTH_SPACE, run.group(0)), text)


def make_wrapping(label: QLabel) -> QLabel:
    """Let ``label`` wrap and never ask for more width than its dock gives it; returns it."""
    label.setWordWrap(True)
    policy = label.sizePolicy()
    policy.setHorizontalPolicy(QSizePolicy.Policy.Ignored)
    label.setSizePolicy(policy)
    label.setMinimumWidth(1)
    return label


def set_status(label: QLabel, text: str) -> None:
    """Show ``text`` in a wrapping status label (see :func:`make_wrapping`), in full in its tooltip."""
    label.setText(breakable(text))
    label.setToolTip(text if len(text) > 80 else "")
