"""Warnings attributed to the user's code: the first frame outside the package.

Frames of ``ntk_sklearn`` and of scikit-learn (``_fit_context``, ``GridSearchCV``, ``clone``)
are skipped, so a warning points at the user's line that called ``fit``/``predict`` (or
scikit-learn's meta-estimator), whatever the depth of the call inside.
"""

from __future__ import annotations

import sys
import warnings
from pathlib import Path

import sklearn

_SKIPPED = tuple(
    {
        str(path)
        for module in (__file__, sklearn.__file__)
        for path in (Path(module).parent, Path(module).resolve().parent)
    }
)


def warn(message: str, category: type[Warning]) -> None:
    """``warnings.warn`` with the stack level of the first caller outside the packages.

    The level is found by walking the stack (``skip_file_prefixes`` of Python 3.12), so no
    function has to pass a ``stacklevel`` number down to the one that warns.
    """
    # stacklevel 1 is this function, 2 its caller, ...
    frame, level = sys._getframe(1), 2
    while frame is not None and frame.f_code.co_filename.startswith(_SKIPPED):
        frame, level = frame.f_back, level + 1
    warnings.warn(message, category, stacklevel=level)
