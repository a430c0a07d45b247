"""Warnings attributed to the user's code: the first frame outside the package."""

from __future__ import annotations

import sys
import warnings
from pathlib import Path

_PACKAGE = str(Path(__file__).resolve().parent)


def warn(message: str, category: type[Warning]) -> None:
    """``warnings.warn`` with the stack level of the first caller outside ``ntk_sklearn``.

    The level is found by walking the stack (``skip_file_prefixes`` of Python 3.12), so no
    function has to pass a ``stacklevel`` number down to the one that warns.
    """
    frame, level = sys._getframe(1), 1
    while frame is not None and frame.f_code.co_filename.startswith(_PACKAGE):
        frame, level = frame.f_back, level + 1
    warnings.warn(message, category, stacklevel=level)
