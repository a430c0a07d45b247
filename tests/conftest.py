"""Shared pytest fixtures.

The offline data and the neural-tangents golden values live in ``<project root>/../shared``
(override with the ``NTK_SKLEARN_SHARED`` environment variable). Tests that need them are
skipped, with the reason, when that folder is absent.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]


def shared_dir() -> Path:
    return Path(os.environ.get("NTK_SKLEARN_SHARED", ROOT.parent / "shared"))


@pytest.fixture(scope="session")
def shared() -> Path:
    path = shared_dir()
    if not path.is_dir():
        pytest.skip(f"shared data folder not found at {path} (set NTK_SKLEARN_SHARED)")
    return path


@pytest.fixture(scope="session")
def reference(shared):
    """The neural-tangents 0.6.5 golden values: (arrays, list of case dicts)."""
    path = shared / "reference" / "nt_fc_public.npz"
    if not path.is_file():
        pytest.skip(f"reference file not found at {path}")
    data = dict(np.load(path))
    return data, json.loads(str(data["meta_json"]))
